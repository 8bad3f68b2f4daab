/**
 * Slows Dawn's event polling down during long GPU waits.
 *
 * Why: Dawn's Node-API bindings (npm `webgpu`, dawn/node AsyncRunner) wait for the GPU by
 * polling. While any of their promises is pending (mapAsync, onSubmittedWorkDone,
 * popErrorScope), every poll calls `wgpuInstanceProcessEvents` and schedules the next one with
 * `setImmediate`, looked up on globalThis at each call, passing a newly created native
 * function. In Deno that is 20-50 thousand polls per second of GPU wait (measured on
 * SwiftShader), which costs a whole core the GPU's own threads need on a software adapter.
 * Worse, Deno's bookkeeping of them stalls: under `deno test` (sanitizers on or off), after
 * ~330 thousand polls in one process (about 10 s of waiting in all), the JS thread sat in
 * native code for minutes, removing entries one by one from a list of ~300 thousand (`perf`
 * and gdb: a backward linear scan plus a memmove per entry), SwiftShader's threads idle. That
 * was the "stall after the GPU error step" of tests/gpu/readback_test.ts: it needs no error,
 * only enough waiting in one process; the error step added the waiting that tipped it. Without
 * this throttle the same waits also took twice as long on 2 cores (tests/gpu/dawn_poll_test.ts:
 * 13.2 s against 6.1 s).
 *
 * So a poll that Dawn schedules from inside its own poll, once the wait has lasted
 * FAST_POLL_MS, goes through a 1-ms `setTimeout` instead: short waits (a prompt on a real GPU)
 * keep the immediate polling, long ones cost about a poll per ms (measured: 3 thousand polls
 * in 6 s of waits, 0.2 ms per small readback after them). Only Dawn's calls are touched: one
 * argument, a nameless native function.
 */

/** Dawn's polls since the process started: those run as immediates, and those deferred. */
export const dawnPolls = { immediate: 0, deferred: 0 };

/** How long a wait keeps Dawn's immediate polling before it is spaced out. */
const FAST_POLL_MS = 5;
const POLL_INTERVAL_MS = 1;

let installed = false;

/** Installs the throttle on globalThis.setImmediate, once per process (before Dawn runs). */
export function throttleDawnPolling(): void {
  if (installed) return;
  const g = globalThis as unknown as { setImmediate?: (...args: unknown[]) => unknown };
  const original = g.setImmediate;
  if (typeof original !== "function") return; // no setImmediate: Dawn could not poll anyway
  installed = true;
  const sourceOf = Function.prototype.toString;
  /** The Dawn poll running now, if any: a setImmediate from inside it is the next poll. */
  let running: { rescheduled: boolean } | null = null;
  /** When the current run of back-to-back polls started (null: Dawn is not polling). */
  let waitStart: number | null = null;
  g.setImmediate = function (this: unknown, ...args: unknown[]) {
    const fn = args[0];
    if (
      args.length !== 1 || typeof fn !== "function" || fn.name !== "" ||
      !sourceOf.call(fn).includes("[native code]")
    ) {
      return original.apply(this, args);
    }
    const now = performance.now();
    const continuing = running !== null;
    if (running) running.rescheduled = true;
    waitStart ??= now;
    const state = { rescheduled: false };
    const poll = () => {
      running = state;
      try {
        (fn as () => void)();
      } finally {
        running = null;
        if (!state.rescheduled) waitStart = null; // nothing left to wait for
      }
    };
    if (continuing && waitStart !== null && now - waitStart > FAST_POLL_MS) {
      dawnPolls.deferred++;
      return setTimeout(poll, POLL_INTERVAL_MS);
    }
    dawnPolls.immediate++;
    return original.call(this, poll);
  };
}
