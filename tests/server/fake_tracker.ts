/**
 * A stand-in VideoTracker for tests of the video routes' HTTP side (no GPU): object k's mask
 * on frame f is the box of half-size 3 + objId around its last click, moved right by f pixels;
 * its score is objId + f / 100. Propagation yields one frame per step, optionally after a
 * delay, and counts how many frames it computed (a cancelled stream stops early).
 */
import type { RgbImage } from "../../src/types.ts";
import type {
  PropagateOptions,
  VideoFrameResult,
  VideoPrompt,
  VideoTracker,
  VideoTrackerFactory,
} from "../../src/video/tracker.ts";

export class FakeTracker implements VideoTracker {
  readonly frames: RgbImage[] = [];
  readonly clicks = new Map<number, [number, number]>();
  computed = 0;
  disposed = false;
  constructor(readonly delayMs = 0) {}

  get numFrames(): number {
    return this.frames.length;
  }

  addFrame(image: RgbImage): number {
    this.frames.push(image);
    return this.frames.length - 1;
  }

  addNewPointsOrBox(p: VideoPrompt): Promise<VideoFrameResult> {
    if (p.frameIdx >= this.frames.length) {
      return Promise.reject(new Error(`addNewPointsOrBox: frameIdx ${p.frameIdx} is not a frame`));
    }
    const at = p.points?.[0] ?? [p.box![0], p.box![1]];
    this.clicks.set(p.objId, [at[0], at[1]]);
    return Promise.resolve(this.result(p.frameIdx));
  }

  async *propagateInVideo(opts: PropagateOptions = {}): AsyncGenerator<VideoFrameResult> {
    const n = this.frames.length;
    const start = opts.startFrameIdx ?? (opts.reverse ? n - 1 : 0);
    const step = opts.reverse ? -1 : 1;
    let done = 0;
    for (let f = start; f >= 0 && f < n; f += step) {
      if (opts.maxFrames !== undefined && done > opts.maxFrames) break;
      if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
      this.computed++;
      done++;
      yield this.result(f);
    }
  }

  removeObject(objId: number): Promise<number[]> {
    this.clicks.delete(objId);
    return Promise.resolve([...this.clicks.keys()]);
  }

  reset(): Promise<void> {
    this.clicks.clear();
    return Promise.resolve();
  }

  /** Every frame is held (no history bound here). */
  memoryUsage(): { framesKept: number; pixelBytes: number } {
    return {
      framesKept: this.frames.length,
      pixelBytes: this.frames.reduce((n, f) => n + f.data.byteLength, 0),
    };
  }

  dispose(): void {
    this.disposed = true;
  }

  /** The masks of frame f (what the routes must serve). */
  result(f: number): VideoFrameResult {
    const { width: W, height: H } = this.frames[0];
    const objIds = [...this.clicks.keys()];
    return {
      frameIdx: f,
      objIds,
      maskLogits: objIds.map((id) => {
        const [cx, cy] = this.clicks.get(id)!;
        const r = 3 + id;
        const m = new Float32Array(W * H).fill(-5);
        for (let y = 0; y < H; y++) {
          for (let x = 0; x < W; x++) {
            if (Math.abs(x - (cx + f)) <= r && Math.abs(y - cy) <= r) m[y * W + x] = 5;
          }
        }
        return m;
      }),
      objScores: objIds.map((id) => id + f / 100),
    };
  }
}

export function fakeFactory(delayMs = 0): VideoTrackerFactory & { made: FakeTracker[] } {
  const made: FakeTracker[] = [];
  return {
    model: "fake",
    made,
    close: () => {},
    create: () => {
      const t = new FakeTracker(delayMs);
      made.push(t);
      return Promise.resolve(t);
    },
  };
}
