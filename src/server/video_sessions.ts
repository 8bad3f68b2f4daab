/**
 * Open video tracking sessions: each owns one VideoTracker (src/video/tracker.ts) and its
 * frames. Bounded in count (limits.maxVideoSessions), frames and frame bytes per session, and
 * in time: a session unused for limits.videoIdleMs is closed (swept on every video request and
 * by a timer that does not keep the process alive). A session runs one model call at a time;
 * a session deleted while a call runs is disposed when that call ends.
 */
import type { RgbImage } from "../types.ts";
import type { VideoTracker } from "../video/tracker.ts";
import { HttpError } from "./errors.ts";
import type { Limits } from "./limits.ts";

export interface VideoSession {
  readonly id: string;
  readonly tracker: VideoTracker;
  width: number;
  height: number;
  /** Frames added (the tracker may have dropped the pixels of old ones: memoryUsage). */
  frames: number;
  /** The tracker's history bound (undefined: every frame is kept). */
  historyFrames?: number;
  /** Object ids prompted so far, in order. */
  objIds: number[];
  lastUsed: number;
  /** What runs now ("prompt", "propagate", ...), or null. */
  busy: string | null;
  closed: boolean;
}

export class VideoSessions {
  private readonly sessions = new Map<string, VideoSession>();
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly limits: Readonly<Limits>,
    /** Frees a tracker's GPU buffers (in the GPU queue's order). */
    private readonly disposeTracker: (tracker: VideoTracker) => void,
    private readonly now: () => number = () => Date.now(),
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  /** A slot for a new session, or a 429 when every slot is taken. */
  checkRoom(): void {
    this.sweep();
    if (this.sessions.size >= this.limits.maxVideoSessions) {
      throw new HttpError(
        429,
        `too many video sessions open (${this.limits.maxVideoSessions}): delete one ` +
          `(DELETE /api/videos/:id) or wait ${Math.round(this.limits.videoIdleMs / 1000)} s ` +
          "for an idle one to expire",
        { "retry-after": String(Math.max(1, Math.ceil(this.limits.videoIdleMs / 1000))) },
      );
    }
  }

  add(tracker: VideoTracker): VideoSession {
    this.checkRoom();
    const session: VideoSession = {
      id: crypto.randomUUID().replaceAll("-", ""),
      tracker,
      width: 0,
      height: 0,
      frames: 0,
      objIds: [],
      lastUsed: this.now(),
      busy: null,
      closed: false,
    };
    this.sessions.set(session.id, session);
    this.startTimer();
    return session;
  }

  /** The session by id (touched), or a 404. */
  get(id: string): VideoSession {
    this.sweep();
    const s = /^[0-9a-f]{32}$/.test(id) ? this.sessions.get(id) : undefined;
    if (!s) {
      throw new HttpError(
        404,
        `unknown video session "${id.slice(0, 80)}" (deleted, or closed after ` +
          `${this.limits.videoIdleMs / 1000} s unused)`,
      );
    }
    s.lastUsed = this.now();
    return s;
  }

  /**
   * Checks a frame against the session's bounds and takes it in. The bounds count the frames
   * whose pixels the tracker still holds (all of them, unless the session was opened with a
   * history_frames bound, as a live stream is).
   */
  addFrame(s: VideoSession, image: RgbImage): number {
    const held = s.tracker.memoryUsage();
    if (held.framesKept >= this.limits.maxVideoFrames) {
      throw new HttpError(
        413,
        `this video session already holds ${held.framesKept} frames, the limit ` +
          `(${this.limits.maxVideoFrames}); start another session, or open one with ` +
          '"history_frames" to keep only recent frames',
      );
    }
    if (s.frames > 0 && (image.width !== s.width || image.height !== s.height)) {
      throw new HttpError(
        400,
        `frame is ${image.width}x${image.height}; this video's frames are ${s.width}x${s.height}`,
      );
    }
    if (held.pixelBytes + image.data.byteLength > this.limits.maxVideoBytes) {
      throw new HttpError(
        413,
        `this video session's frames would exceed ${this.limits.maxVideoBytes} bytes ` +
          `(${held.framesKept} frames held); start another session, or open one with ` +
          '"history_frames" to keep only recent frames',
      );
    }
    const idx = s.tracker.addFrame(image);
    s.width = image.width;
    s.height = image.height;
    s.frames++;
    s.lastUsed = this.now();
    return idx;
  }

  /** Runs `job` as the session's one call in progress (409 while another runs). */
  async exclusive<T>(s: VideoSession, what: string, job: () => Promise<T>): Promise<T> {
    this.claim(s, what);
    try {
      return await job();
    } finally {
      this.release(s);
    }
  }

  claim(s: VideoSession, what: string): void {
    if (s.closed) throw new HttpError(404, "this video session was deleted");
    if (s.busy) {
      throw new HttpError(
        409,
        `video session busy: a ${s.busy} call is running (wait for it, or cancel a ` +
          "propagation by closing its response)",
      );
    }
    s.busy = what;
  }

  release(s: VideoSession): void {
    s.busy = null;
    s.lastUsed = this.now();
    if (s.closed) this.disposeTracker(s.tracker);
  }

  /** Forgets the session; its tracker goes now, or when its running call ends. */
  delete(s: VideoSession): void {
    if (s.closed) return;
    s.closed = true;
    this.sessions.delete(s.id);
    if (!s.busy) this.disposeTracker(s.tracker);
    if (this.sessions.size === 0) this.stopTimer();
  }

  /** Closes the sessions unused for longer than limits.videoIdleMs (never a busy one). */
  sweep(): void {
    const now = this.now();
    for (const s of [...this.sessions.values()]) {
      if (!s.busy && now - s.lastUsed > this.limits.videoIdleMs) this.delete(s);
    }
  }

  close(): void {
    for (const s of [...this.sessions.values()]) this.delete(s);
    this.stopTimer();
  }

  private startTimer(): void {
    if (this.timer !== null) return;
    const every = Math.max(1000, Math.min(60_000, this.limits.videoIdleMs / 4));
    const timer = setInterval(() => this.sweep(), every);
    Deno.unrefTimer(timer);
    this.timer = timer;
  }

  private stopTimer(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
