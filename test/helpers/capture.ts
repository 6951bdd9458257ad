/**
 * A test harness netif: the test injects frames as if they came from the wire and inspects the
 * frames the stack sends. It is the wire itself, not a stand-in for a layer of the stack.
 */
import { emptyNetifStats, type Netif, type NetifReceiver, type NetifStats } from "../../stack/netif/netif.js";

export class CaptureNetif implements Netif {
  readonly name = "capture0";
  readonly features = { checksumOffload: false, maxFrameSize: 1514 };
  readonly sent: Uint8Array[] = [];
  private rx: NetifReceiver | undefined;
  private readonly st: NetifStats = emptyNetifStats();
  constructor(readonly mtu = 1500) {}
  start(rx: NetifReceiver): void {
    this.rx = rx;
  }
  /** One reused receive slot, like a TAP's slab: a Buffer, overwritten after every frame. */
  private readonly slot = Buffer.alloc(70000);

  /**
   * Deliver one frame to the stack synchronously, then end the batch. The frame is copied into a
   * reused Buffer slot that is scribbled over afterwards, so a layer that keeps a view of a
   * received frame (instead of copying) is caught by the tests.
   */
  inject(frame: Uint8Array): void {
    this.st.rxFrames++;
    this.slot.set(frame);
    this.rx?.frame(this.slot.subarray(0, frame.length));
    this.slot.fill(0xa5, 0, frame.length);
    this.rx?.batchEnd?.();
  }
  send(frame: Uint8Array): boolean {
    this.st.txFrames++;
    this.sent.push(frame);
    return true;
  }
  /** Remove and return everything sent so far. */
  take(): Uint8Array[] {
    return this.sent.splice(0);
  }
  stats(): NetifStats {
    return { ...this.st };
  }
  async close(): Promise<void> {
    this.rx = undefined;
  }
}
