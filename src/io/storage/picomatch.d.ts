/** The part of picomatch (fast-glob's matcher, which ships no types) that globS3 uses. */
declare module 'picomatch' {
  function picomatch(glob: string, options?: { dot?: boolean }): (path: string) => boolean;
  export default picomatch;
}
