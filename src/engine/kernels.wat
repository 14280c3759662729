;; The engine's WebAssembly SIMD kernels (see kernels.ts). Assembled with wabt by
;; scripts/assemble-kernels.js: at build time into dist/engine/, and before the tests into
;; src/engine/ (vitest runs the TypeScript sources). Edit this file, not the binaries.
;;
;; Accumulate: acc[i] += w * x[i], two float64 lanes at a time: the same IEEE multiply then add,
;; in the same order, as `accumulate` in JS, so the sums are bit-identical to it.
;; Encode to bf16 / f16: the same steps as `encode` (round-to-odd to f32, then round to nearest
;; even), four lanes at a time, bit-identical to it; to f32: one rounding to nearest even.
;;
;; Every kernel takes byte offsets into the imported memory and a count n of elements; it handles
;; the largest multiple of its step (4, 8, 2; 8, 8, 4; 8, 4) below n and leaves the tail to the caller.
;; Zeroing and the f32 encode are here because over a shared memory V8's typed-array builtins
;; (fill, set) go element by element (measured: zeroing 256 MB 36 ms shared vs 4 ms plain,
;; float64 -> float32 53 vs 28 ms per 32 M elements); the finiteness check because 4-8 lanes at a
;; time beat the JS loop (39 ms per 32 M elements).
;; The memory import is shared (threads); the assembler also writes a copy for plain memory.
(module
  (import "env" "mem" (memory 1 65536 shared))

  ;; ---- accumulate: float32, bf16, float64 inputs into a float64 accumulator ------------------

  ;; 4 float32 (16 bytes) per step -> 4 float64 (32 bytes).
  (func (export "f32") (param $src i32) (param $acc i32) (param $n i32) (param $w f64)
    (local $wv v128) (local $x v128)
    (local.set $wv (f64x2.splat (local.get $w)))
    (block $done
      (loop $next
        (br_if $done (i32.lt_s (local.get $n) (i32.const 4)))
        (local.set $x (v128.load align=1 (local.get $src)))
        ;; lanes 0, 1 of x
        (v128.store offset=0 align=1 (local.get $acc)
          (f64x2.add (v128.load offset=0 align=1 (local.get $acc))
                     (f64x2.mul (f64x2.promote_low_f32x4 (local.get $x)) (local.get $wv))))
        ;; lanes 2, 3 of x, moved down to be promoted
        (v128.store offset=16 align=1 (local.get $acc)
          (f64x2.add (v128.load offset=16 align=1 (local.get $acc))
                     (f64x2.mul (f64x2.promote_low_f32x4
                                  (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15
                                    (local.get $x) (local.get $x)))
                                (local.get $wv))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 32)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $next))))

  ;; 8 bf16 (16 bytes) per step -> 8 float64 (64 bytes). A bf16 is the top half of a float32:
  ;; widen each half of x to 32 bits and shift it into place, then as f32.
  (func (export "bf16") (param $src i32) (param $acc i32) (param $n i32) (param $w f64)
    (local $wv v128) (local $x v128) (local $f v128)
    (local.set $wv (f64x2.splat (local.get $w)))
    (block $done
      (loop $next
        (br_if $done (i32.lt_s (local.get $n) (i32.const 8)))
        (local.set $x (v128.load align=1 (local.get $src)))
        ;; elements 0-3
        (local.set $f (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $x)) (i32.const 16)))
        (v128.store offset=0 align=1 (local.get $acc)
          (f64x2.add (v128.load offset=0 align=1 (local.get $acc))
                     (f64x2.mul (f64x2.promote_low_f32x4 (local.get $f)) (local.get $wv))))
        (v128.store offset=16 align=1 (local.get $acc)
          (f64x2.add (v128.load offset=16 align=1 (local.get $acc))
                     (f64x2.mul (f64x2.promote_low_f32x4
                                  (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15
                                    (local.get $f) (local.get $f)))
                                (local.get $wv))))
        ;; elements 4-7
        (local.set $f (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $x)) (i32.const 16)))
        (v128.store offset=32 align=1 (local.get $acc)
          (f64x2.add (v128.load offset=32 align=1 (local.get $acc))
                     (f64x2.mul (f64x2.promote_low_f32x4 (local.get $f)) (local.get $wv))))
        (v128.store offset=48 align=1 (local.get $acc)
          (f64x2.add (v128.load offset=48 align=1 (local.get $acc))
                     (f64x2.mul (f64x2.promote_low_f32x4
                                  (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15
                                    (local.get $f) (local.get $f)))
                                (local.get $wv))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 64)))
        (local.set $n (i32.sub (local.get $n) (i32.const 8)))
        (br $next))))

  ;; 2 float64 per step.
  (func (export "f64") (param $src i32) (param $acc i32) (param $n i32) (param $w f64)
    (local $wv v128)
    (local.set $wv (f64x2.splat (local.get $w)))
    (block $done
      (loop $next
        (br_if $done (i32.lt_s (local.get $n) (i32.const 2)))
        (v128.store align=1 (local.get $acc)
          (f64x2.add (v128.load align=1 (local.get $acc))
                     (f64x2.mul (v128.load align=1 (local.get $src)) (local.get $wv))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 2)))
        (br $next))))

;; ---- encode: float64 -> bf16 / f16 ---------------------------------------------------------
  ;; Both take 8 float64 (64 bytes) per step, as two groups of 4 (one f32x4 each), and store 8
  ;; 16-bit results (16 bytes). Each group is first rounded to float32 with round-to-odd, as
  ;; `encode` does (so that the second rounding, to 16 bits, cannot round twice):
  ;;   F = the round-to-nearest-even f32 of x; B = F's bits - 1 where |F| > |x|, then | 1 where
  ;;   F != x.
  ;; The group code is written once, in an inner loop of two turns: V8 (Node 20) does not inline
  ;; calls between WebAssembly functions, and a helper function per group cost 40% (measured).

  ;; bf16 = the high half of B + 0x7fff + ((B >> 16) & 1); a NaN becomes sign | 0x7fc00000
  ;; instead (a NaN payload + 0x7fff could carry into the sign).
  (func (export "toBf16") (param $src i32) (param $dst i32) (param $n i32)
    (local $x0 v128) (local $x1 v128) (local $d0 v128) (local $d1 v128) (local $p0 v128) (local $p1 v128)
    (local $f v128) (local $b v128) (local $bits v128) (local $first v128) (local $turn i32)
    (local $one v128) (local $rne v128) (local $sign v128) (local $qnan v128)
    (local.set $one (v128.const i32x4 1 1 1 1))
    (local.set $rne (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff))
    (local.set $sign (v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000))
    (local.set $qnan (v128.const i32x4 0x7fc00000 0x7fc00000 0x7fc00000 0x7fc00000))
    (block $done
      (loop $next
        (br_if $done (i32.lt_s (local.get $n) (i32.const 8)))
        (local.set $turn (i32.const 0))
        (loop $group
          ;; B, F of the 4 float64 at $src (round to odd, above)
          (local.set $x0 (v128.load offset=0 align=1 (local.get $src)))
          (local.set $x1 (v128.load offset=16 align=1 (local.get $src)))
          (local.set $d0 (f32x4.demote_f64x2_zero (local.get $x0)))
          (local.set $d1 (f32x4.demote_f64x2_zero (local.get $x1)))
          (local.set $p0 (f64x2.promote_low_f32x4 (local.get $d0)))
          (local.set $p1 (f64x2.promote_low_f32x4 (local.get $d1)))
          (local.set $f (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $d0) (local.get $d1)))
          (local.set $b
            (v128.or
              ;; + (-1) where |F| > |x|: the f64 masks' low words as one i32x4 mask
              (i32x4.add (local.get $f)
                (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27
                  (f64x2.gt (f64x2.abs (local.get $p0)) (f64x2.abs (local.get $x0)))
                  (f64x2.gt (f64x2.abs (local.get $p1)) (f64x2.abs (local.get $x1)))))
              ;; | 1 where F != x
              (v128.and (local.get $one)
                (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27
                  (f64x2.ne (local.get $p0) (local.get $x0))
                  (f64x2.ne (local.get $p1) (local.get $x1))))))
          ;; the bf16 bits, in the high half of each lane
          (local.set $bits
            (v128.bitselect
              (v128.or (v128.and (local.get $f) (local.get $sign)) (local.get $qnan))
              (i32x4.add (i32x4.add (local.get $b) (local.get $rne))
                         (v128.and (i32x4.shr_u (local.get $b) (i32.const 16)) (local.get $one)))
              (f32x4.ne (local.get $f) (local.get $f))))
          (local.set $src (i32.add (local.get $src) (i32.const 32)))
          (if (i32.eqz (local.get $turn))
            (then
              (local.set $first (local.get $bits))
              (local.set $turn (i32.const 1))
              (br $group))))
        ;; the high halves of both groups
        (v128.store align=1 (local.get $dst)
          (i8x16.shuffle 2 3 6 7 10 11 14 15 18 19 22 23 26 27 30 31 (local.get $first) (local.get $bits)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 8)))
        (br $next))))

  ;; f16, as `f32BitsToF16` on B without branches. A = |B| (bits):
  ;;   NaN (A > 0x7f800000)       -> 0x7e00
  ;;   A > 65519.996 (0x477fefff) -> 0x7c00 (infinity: 65520 and up round to it)
  ;;   normal (A >= 2^-14)        -> T = A - (112 << 23) (the exponent rebiased),
  ;;                                 (T + 0xfff + ((T >> 13) & 1)) >> 13
  ;;   below 2^-14 the f32 add rounds for us: A + 0.5 has its ulp at 2^-24, the f16 subnormal
  ;;   step, so it rounds A there to nearest even, and its bits minus those of 0.5 are the f16
  ;;   bits.
  ;; Then | the sign (bit 31 -> bit 15).
  (func (export "toF16") (param $src i32) (param $dst i32) (param $n i32)
    (local $x0 v128) (local $x1 v128) (local $d0 v128) (local $d1 v128) (local $p0 v128) (local $p1 v128)
    (local $f v128) (local $b v128) (local $a v128) (local $t v128) (local $bits v128) (local $first v128)
    (local $turn i32)
    (local $one v128) (local $abs v128) (local $bias v128) (local $half v128) (local $rne13 v128)
    (local $minNormal v128) (local $overflow v128) (local $exp v128) (local $nan16 v128) (local $inf16 v128)
    (local $sign16 v128)
    (local.set $one (v128.const i32x4 1 1 1 1))
    (local.set $abs (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff))
    (local.set $bias (v128.const i32x4 0x38000000 0x38000000 0x38000000 0x38000000))
    (local.set $half (v128.const i32x4 0x3f000000 0x3f000000 0x3f000000 0x3f000000))
    (local.set $rne13 (v128.const i32x4 0xfff 0xfff 0xfff 0xfff))
    (local.set $minNormal (v128.const i32x4 0x38800000 0x38800000 0x38800000 0x38800000))
    (local.set $overflow (v128.const i32x4 0x477fefff 0x477fefff 0x477fefff 0x477fefff))
    (local.set $exp (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
    (local.set $nan16 (v128.const i32x4 0x7e00 0x7e00 0x7e00 0x7e00))
    (local.set $inf16 (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00))
    (local.set $sign16 (v128.const i32x4 0x8000 0x8000 0x8000 0x8000))
    (block $done
      (loop $next
        (br_if $done (i32.lt_s (local.get $n) (i32.const 8)))
        (local.set $turn (i32.const 0))
        (loop $group
          ;; B of the 4 float64 at $src (round to odd, as in toBf16)
          (local.set $x0 (v128.load offset=0 align=1 (local.get $src)))
          (local.set $x1 (v128.load offset=16 align=1 (local.get $src)))
          (local.set $d0 (f32x4.demote_f64x2_zero (local.get $x0)))
          (local.set $d1 (f32x4.demote_f64x2_zero (local.get $x1)))
          (local.set $p0 (f64x2.promote_low_f32x4 (local.get $d0)))
          (local.set $p1 (f64x2.promote_low_f32x4 (local.get $d1)))
          (local.set $f (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $d0) (local.get $d1)))
          (local.set $b
            (v128.or
              (i32x4.add (local.get $f)
                (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27
                  (f64x2.gt (f64x2.abs (local.get $p0)) (f64x2.abs (local.get $x0)))
                  (f64x2.gt (f64x2.abs (local.get $p1)) (f64x2.abs (local.get $x1)))))
              (v128.and (local.get $one)
                (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27
                  (f64x2.ne (local.get $p0) (local.get $x0))
                  (f64x2.ne (local.get $p1) (local.get $x1))))))
          (local.set $a (v128.and (local.get $b) (local.get $abs)))
          (local.set $t (i32x4.sub (local.get $a) (local.get $bias)))
          ;; the f16 bits, in the low half of each lane
          (local.set $bits
            (v128.or
              (v128.bitselect
                (local.get $nan16)
                (v128.bitselect
                  (local.get $inf16)
                  (v128.bitselect
                    ;; subnormal
                    (i32x4.sub (f32x4.add (local.get $a) (local.get $half)) (local.get $half))
                    ;; normal
                    (i32x4.shr_u
                      (i32x4.add (i32x4.add (local.get $t) (local.get $rne13))
                                 (v128.and (i32x4.shr_u (local.get $t) (i32.const 13)) (local.get $one)))
                      (i32.const 13))
                    (i32x4.lt_s (local.get $a) (local.get $minNormal)))
                  (i32x4.gt_s (local.get $a) (local.get $overflow)))
                (i32x4.gt_s (local.get $a) (local.get $exp)))
              (v128.and (i32x4.shr_u (local.get $b) (i32.const 16)) (local.get $sign16))))
          (local.set $src (i32.add (local.get $src) (i32.const 32)))
          (if (i32.eqz (local.get $turn))
            (then
              (local.set $first (local.get $bits))
              (local.set $turn (i32.const 1))
              (br $group))))
        ;; the low halves of both groups (not i16x8.narrow, which saturates)
        (v128.store align=1 (local.get $dst)
          (i8x16.shuffle 0 1 4 5 8 9 12 13 16 17 20 21 24 25 28 29 (local.get $first) (local.get $bits)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 8)))
        (br $next))))

  ;; float32 = float64 rounded to nearest even (as JS ToFloat32 and Float32Array.set): 4 per step.
  (func (export "toF32") (param $src i32) (param $dst i32) (param $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.lt_s (local.get $n) (i32.const 4)))
        (v128.store align=1 (local.get $dst)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
            (f32x4.demote_f64x2_zero (v128.load offset=0 align=1 (local.get $src)))
            (f32x4.demote_f64x2_zero (v128.load offset=16 align=1 (local.get $src)))))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $next))))

  ;; ---- zero, finiteness ----------------------------------------------------------------------

  ;; n float64 zeros at $dst (a memset: the accumulator is zeroed before each chunk's sum).
  (func (export "zero") (param $dst i32) (param $n i32)
    (memory.fill (local.get $dst) (i32.const 0) (i32.shl (local.get $n) (i32.const 3))))

  ;; 1 if one of the encoded values has an all-ones exponent (infinity or NaN), else 0.
  ;; 16-bit values (bf16: exponent mask 0x7f80, f16: 0x7c00), 8 per step.
  (func (export "nonFinite16") (param $src i32) (param $n i32) (param $mask i32) (result i32)
    (local $m v128) (local $hit v128)
    (local.set $m (i16x8.splat (local.get $mask)))
    (block $done
      (loop $next
        (br_if $done (i32.lt_s (local.get $n) (i32.const 8)))
        (local.set $hit (v128.or (local.get $hit)
          (i16x8.eq (v128.and (v128.load align=1 (local.get $src)) (local.get $m)) (local.get $m))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 8)))
        (br $next)))
    (v128.any_true (local.get $hit)))

  ;; float32, 4 per step.
  (func (export "nonFinite32") (param $src i32) (param $n i32) (result i32)
    (local $m v128) (local $hit v128)
    (local.set $m (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
    (block $done
      (loop $next
        (br_if $done (i32.lt_s (local.get $n) (i32.const 4)))
        (local.set $hit (v128.or (local.get $hit)
          (i32x4.eq (v128.and (v128.load align=1 (local.get $src)) (local.get $m)) (local.get $m))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $next)))
    (v128.any_true (local.get $hit)))
)
