/** Sequence number arithmetic modulo 2^32 (RFC 9293 §3.4; RFC 1982 style comparisons). */
export const seqAdd = (a: number, n: number): number => (a + n) >>> 0;
export const seqSub = (a: number, b: number): number => (a - b) | 0; // signed distance a - b
export const seqLt = (a: number, b: number): boolean => ((a - b) | 0) < 0;
export const seqLe = (a: number, b: number): boolean => ((a - b) | 0) <= 0;
export const seqGt = (a: number, b: number): boolean => ((a - b) | 0) > 0;
export const seqGe = (a: number, b: number): boolean => ((a - b) | 0) >= 0;
export const seqMax = (a: number, b: number): number => (seqGt(a, b) ? a : b);
export const seqMin = (a: number, b: number): number => (seqLt(a, b) ? a : b);
/** a <= x < b, modulo 2^32. */
export const seqInWindow = (x: number, a: number, b: number): boolean => seqLe(a, x) && seqLt(x, b);
