/**
 * Congestion control behind one interface: NewReno (RFC 5681 + RFC 6582 recovery) and CUBIC
 * (RFC 9438, the default). Windows are in bytes; `mss` is the sender's effective MSS.
 * The connection calls: onAck for newly acknowledged bytes outside recovery, enterRecovery on
 * fast retransmit, exitRecovery when recovery ends, onRto on a retransmission timeout.
 */
import { DOUBLE_ZERO } from "../core/double.js";

export interface CongestionControl {
  readonly name: string;
  cwnd: number;
  ssthresh: number;
  onAck(acked: number, now: number, rttMs: number): void;
  enterRecovery(flightSize: number, now: number): void;
  exitRecovery(now: number): void;
  onRto(flightSize: number, now: number): void;
}

/** RFC 6928: initial window of 10 segments (capped at 14600 bytes in spirit; we use 10 x MSS). */
export function initialWindow(mss: number): number {
  return 10 * mss;
}

export class NewReno implements CongestionControl {
  readonly name = "newreno";
  cwnd: number;
  ssthresh = 0x7fffffff;
  private acc = 0;
  constructor(private readonly mss: () => number) {
    this.cwnd = initialWindow(mss());
  }
  onAck(acked: number): void {
    const mss = this.mss();
    if (this.cwnd < this.ssthresh) {
      // Slow start with appropriate byte counting (RFC 3465, L = 2 SMSS).
      this.cwnd += Math.min(acked, 2 * mss);
    } else {
      // Congestion avoidance: one MSS per window of bytes acknowledged.
      this.acc += acked;
      if (this.acc >= this.cwnd) {
        this.acc -= this.cwnd;
        this.cwnd += mss;
      }
    }
  }
  enterRecovery(flight: number): void {
    this.ssthresh = Math.max(flight / 2, 2 * this.mss());
    this.cwnd = this.ssthresh + 3 * this.mss();
  }
  exitRecovery(): void {
    this.cwnd = this.ssthresh;
  }
  onRto(flight: number): void {
    this.ssthresh = Math.max(flight / 2, 2 * this.mss());
    this.cwnd = this.mss(); // RFC 5681 §3.1: loss window
    this.acc = 0;
  }
}

/** CUBIC (RFC 9438) with its TCP-friendly region and fast convergence. */
export class Cubic implements CongestionControl {
  readonly name = "cubic";
  cwnd: number;
  ssthresh = 0x7fffffff;
  private wMax = 0; // bytes
  private k = 0; // seconds
  private epochStart = -1; // ms
  private wEst = 0;
  private acc = 0;
  private static readonly C = 0.4;
  private static readonly BETA = 0.7;
  constructor(private readonly mss: () => number) {
    this.cwnd = initialWindow(mss());
  }
  onAck(acked: number, now: number, rttMs: number): void {
    const mss = this.mss();
    if (this.cwnd < this.ssthresh) {
      this.cwnd += Math.min(acked, 2 * mss);
      return;
    }
    if (this.epochStart < 0) {
      this.epochStart = now;
      if (this.cwnd < this.wMax) this.k = Math.cbrt((this.wMax - this.cwnd) / mss / Cubic.C);
      else {
        this.k = 0;
        this.wMax = this.cwnd;
      }
      this.wEst = this.cwnd;
    }
    const t = (now - this.epochStart + rttMs) / 1000;
    const target = this.wMax + Cubic.C * Math.pow(t - this.k, 3) * mss;
    // TCP-friendly estimate (§4.3): Reno's growth with alpha = 3(1-beta)/(1+beta).
    const alpha = (3 * (1 - Cubic.BETA)) / (1 + Cubic.BETA);
    this.wEst += (alpha * acked * mss) / this.cwnd;
    const goal = Math.max(target, this.wEst);
    if (goal > this.cwnd) {
      // Grow by (goal - cwnd)/cwnd per MSS acked, at most 1.5x per RTT.
      this.acc += acked;
      const inc = Math.min(((goal - this.cwnd) / this.cwnd) * this.acc, this.cwnd / 2);
      if (inc >= 1) {
        this.cwnd += inc;
        this.acc = 0;
      }
    }
  }
  private reduce(): void {
    const mss = this.mss();
    // Fast convergence (§4.7).
    this.wMax = this.cwnd < this.wMax ? (this.cwnd * (1 + Cubic.BETA)) / 2 : this.cwnd;
    this.ssthresh = Math.max(this.cwnd * Cubic.BETA, 2 * mss);
    this.epochStart = -1;
  }
  enterRecovery(): void {
    this.reduce();
    this.cwnd = this.ssthresh;
  }
  exitRecovery(): void {
    this.cwnd = this.ssthresh;
  }
  onRto(): void {
    this.reduce();
    this.cwnd = this.mss();
  }
}

export type CongestionControlName = "cubic" | "newreno";

export function makeCongestionControl(name: CongestionControlName, mss: () => number): CongestionControl {
  return name === "newreno" ? new NewReno(mss) : new Cubic(mss);
}

/** RFC 6298 retransmission timer: SRTT/RTTVAR, RTO = SRTT + max(G, 4 RTTVAR), bounded. */
export class RttEstimator {
  // Milliseconds with fractions: doubles from the start (core/double.ts).
  srtt = DOUBLE_ZERO;
  rttvar = DOUBLE_ZERO;
  rto: number;
  private measured = false;
  constructor(
    private readonly minRto: number,
    private readonly maxRto: number,
    initialRto = 1000,
  ) {
    this.rto = initialRto;
  }
  sample(r: number): void {
    if (r < 0) return;
    if (!this.measured) {
      this.srtt = r;
      this.rttvar = r / 2;
      this.measured = true;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.rto = Math.min(this.maxRto, Math.max(this.minRto, this.srtt + Math.max(1, 4 * this.rttvar)));
  }
  get hasSample(): boolean {
    return this.measured;
  }
}
