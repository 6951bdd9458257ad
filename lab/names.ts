/**
 * Unique names for namespaces and interfaces: the process id keeps processes apart, a counter the
 * labs of one process (names are process-wide, hence the module-level counter).
 */
let counter = 0;

/** The next value of this process's name counter, in base 36. */
export function nextId(): string {
  return (counter++).toString(36);
}

/**
 * A unique interface name (at most 15 bytes, IFNAMSIZ - 1) for this process: prefix (up to 5
 * characters), the pid's last 5 digits and a counter.
 */
export function ifname(prefix = "paf"): string {
  return `${prefix.slice(0, 5)}${process.pid % 100000}x${nextId()}`.slice(0, 15);
}

/** A unique namespace name: paf-<tag><pid>-<n>, so stale ones are easy to find (`ip netns | grep ^paf-`). */
export function netnsName(tag: string): string {
  if (!/^[a-z0-9]{0,12}$/i.test(tag)) throw new TypeError(`namespace tag must be 0..12 letters or digits: "${tag}"`);
  return `paf-${tag}${process.pid}-${nextId()}`;
}
