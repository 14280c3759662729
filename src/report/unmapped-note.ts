/** The sentence every report carries when some weights were scored as exported, not averaged. */
import type { ExportedInitializer } from '../eval/binding.js';

export function unmappedNote(unmapped: readonly ExportedInitializer[] | undefined): string | undefined {
  if (unmapped === undefined || unmapped.length === 0) return undefined;
  const names = unmapped
    .slice(0, 8)
    .map((u) => `"${u.initializer}" [${u.shape.join(', ')}]`)
    .join(', ');
  const more = unmapped.length > 8 ? ` and ${unmapped.length - 8} more` : '';
  const n = unmapped.length;
  return `note: ${n} float initializer${n === 1 ? ' is' : 's are'} not averaged: every candidate uses the exported values of ${names}${more} (--allow-unmapped)`;
}
