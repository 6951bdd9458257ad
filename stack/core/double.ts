/**
 * Starting values for number fields that will hold more than V8's small integers (31 bits, so
 * anything from 2^30 up): 32-bit sequence numbers and timestamps, byte counts, times in ms.
 *
 * V8 gives an object field the representation of the first value stored in it. A field that
 * starts as a small integer (0, -1) and later gets a larger number changes to a double, and V8
 * then deprecates the map of every object made along the class's chain of fields after that
 * one (up to 71 for a Tcb) and deoptimizes the code compiled against them. With random initial
 * sequence numbers that came at random, on whichever of a process's first connections first
 * drew a number of 2^30 or more, or first received 1 GiB (`bytesRead`): 10-40 deoptimizations
 * of the receive path in the middle of a transfer (`node --trace-deopt --trace-generalization`).
 * A field that starts as a double never changes.
 */

/** 0 as a double: -0, equal to 0 in arithmetic, comparisons, `| 0`, `>>> 0` and JSON. */
export const DOUBLE_ZERO = -0;
/** -1 (a "none" sequence number or time) as a double (adding -0 keeps the heap number). */
export const DOUBLE_MINUS_ONE = -1 + DOUBLE_ZERO;
/** `n` as the public sees it: +0 for the -0 of a counter that never moved. */
export const plain = (n: number): number => n + 0;
