/**
 * The one GPU work queue: jobs run one at a time, in arrival order. At most `maxWaiting` jobs
 * wait; one more is refused at once (QueueFullError -> 503 with Retry-After). A job has a time
 * limit from the moment it is submitted: if it is still waiting when the limit passes it leaves
 * the queue unrun (503); if it is running, the caller gets a 504 at once but the job keeps its
 * slot until the work really ends, so the next job never overlaps GPU work still in flight.
 * Short bookkeeping jobs that must not be lost (`always`) wait their turn like any other but are
 * never refused and have no time limit.
 */
import { HttpError } from "./errors.ts";

export interface QueueStats {
  running: boolean;
  waiting: number;
  maxWaiting: number;
  completed: number;
  failed: number;
  rejected: number;
  timedOut: number;
}

interface Waiter {
  start: () => void;
  /** An `always` job: it takes no request's place in the queue. */
  always: boolean;
}

export class WorkQueue {
  private busy = false;
  private readonly waiting: Waiter[] = [];
  private completed = 0;
  private failed = 0;
  private rejected = 0;
  private timedOut = 0;

  constructor(readonly maxWaiting: number, readonly retryAfterS = 2) {}

  stats(): QueueStats {
    return {
      running: this.busy,
      waiting: this.waiting.length,
      maxWaiting: this.maxWaiting,
      completed: this.completed,
      failed: this.failed,
      rejected: this.rejected,
      timedOut: this.timedOut,
    };
  }

  /**
   * Runs `job` when its turn comes; rejects with an HttpError when the queue is full (503),
   * when `timeoutMs` passes (503 while waiting, 504 while running) or when `signal` aborts
   * while waiting (499-like; the client is gone, so the status matters little). With
   * `limitRunning: false` the limit bounds only the wait: once started, the job's caller
   * hears from it whenever it ends (image encoding, which is cached and never wasted).
   */
  run<T>(
    job: () => Promise<T>,
    opts: { timeoutMs: number; signal?: AbortSignal; limitRunning?: boolean },
  ): Promise<T> {
    return this.submit(job, opts.timeoutMs, opts.signal, false, opts.limitRunning ?? true);
  }

  /**
   * Runs `job` in its turn, after the jobs already waiting, like `run`, but it is never refused
   * for a full queue and has no time limit: for short work that must not be lost, such as
   * forgetting a deleted image's embedding. When the queue is idle it starts at once. Callers
   * bound how many they submit (one per stored image deleted).
   */
  always<T>(job: () => T | Promise<T>): Promise<T> {
    return this.submit(async () => await job(), Infinity, undefined, true);
  }

  private submit<T>(
    job: () => Promise<T>,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    always: boolean,
    limitRunning = true,
  ): Promise<T> {
    if (signal?.aborted) return Promise.reject(new HttpError(499, "client closed the request"));
    const requestsWaiting = this.waiting.filter((w) => !w.always).length;
    if (!always && this.busy && requestsWaiting >= this.maxWaiting) {
      this.rejected++;
      return Promise.reject(
        new HttpError(503, `server busy: ${requestsWaiting} requests already waiting`, {
          "retry-after": String(this.retryAfterS),
        }),
      );
    }
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let started = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const waiter: Waiter = {
        always,
        start: () => {
          started = true;
          this.busy = true;
          if (!limitRunning) clearTimeout(timer);
          let work: Promise<T>;
          try {
            work = job();
          } catch (e) {
            work = Promise.reject(e);
          }
          // The slot is freed before the caller hears back, so that what it asks next (e.g.
          // GET /api/info) sees the queue as it is.
          work.then(
            (value) => {
              this.completed++;
              this.next();
              settle(() => resolve(value));
            },
            (err) => {
              this.failed++;
              this.next();
              settle(() => reject(err));
            },
          );
        },
      };
      const leave = (err: HttpError) => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        settle(() => reject(err));
      };
      const onTimeout = () => {
        this.timedOut++;
        if (started) {
          leave(new HttpError(504, `request took longer than ${timeoutMs} ms`));
        } else {
          leave(
            new HttpError(503, `request waited longer than ${timeoutMs} ms in the queue`, {
              "retry-after": String(this.retryAfterS),
            }),
          );
        }
      };
      // No timer for `always` jobs (setTimeout would take Infinity for 0).
      const timer = Number.isFinite(timeoutMs) ? setTimeout(onTimeout, timeoutMs) : undefined;
      const onAbort = () => {
        if (!started) leave(new HttpError(499, "client closed the request"));
      };
      signal?.addEventListener("abort", onAbort);
      if (this.busy) this.waiting.push(waiter);
      else waiter.start();
    });
  }

  private next(): void {
    this.busy = false;
    const waiter = this.waiting.shift();
    if (waiter) waiter.start();
  }
}
