/**
 * The worker loop of `deno task worker`: take a job (src/batch/jobs.ts), run it
 * (src/batch/runner.ts), write `<output>/<stem>.json`, record the result, and when a batch has
 * no image left, write its merged `<output>/annotations.json` (src/batch/merge.ts).
 */
import { join } from "node:path";
import { mergeBatch, writeAtomic } from "./merge.ts";
import {
  batchInfo,
  countAttempt,
  dropJob,
  ensureGroup,
  finishedUnmerged,
  GROUP,
  heartbeat,
  type Job,
  lockMerge,
  markDone,
  markFailed,
  markMerged,
  nextJob,
  STREAM,
} from "./jobs.ts";
import { JobRunner } from "./runner.ts";
import { type Redis, redisUp } from "../server/redis.ts";

export interface WorkerOptions {
  /** This worker's name in the consumer group (unique per process). */
  consumer: string;
  /** A job idle this long (its worker died) goes to another worker. */
  visibilityMs: number;
  /** Deliveries of one job before it is recorded failed (workers dying on it each time). */
  maxAttempts: number;
  /** Return once no job is left, pending ones of dead workers included. */
  untilEmpty: boolean;
  log: (line: string) => void;
  /** Aborted: finish the current job, then return. */
  signal?: AbortSignal;
}

export async function runWorker(redis: Redis, opts: WorkerOptions): Promise<void> {
  const { consumer, log } = opts;
  await ensureGroup(redis);
  const runner = new JobRunner(log);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  try {
    while (!opts.signal?.aborted) {
      await mergeFinished(redis, consumer, log);
      let job: Job | null;
      try {
        job = await nextJob(redis, consumer, opts.visibilityMs, 1000);
      } catch (e) {
        // An outage is logged once by the connection; other failures here.
        if (redisUp(redis)) log(`ERROR redis: ${(e as Error).message}; retrying`);
        await sleep(1000);
        continue;
      }
      if (job) {
        await handle(redis, runner, job, opts);
        continue;
      }
      if (opts.untilEmpty) {
        // Jobs of dead workers are still pending until their visibility timeout: wait for them.
        const pending = await redis.xpending(STREAM, GROUP) as [number, ...unknown[]];
        if (Number(pending[0]) === 0) {
          await mergeFinished(redis, consumer, log);
          return;
        }
      }
    }
  } finally {
    await runner.dispose();
  }
}

async function handle(redis: Redis, runner: JobRunner, job: Job, opts: WorkerOptions) {
  const { consumer, log } = opts;
  const info = await batchInfo(redis, job.batch);
  if (!info) {
    log(`job ${job.entry}: batch ${job.batch} no longer exists; dropped`);
    await dropJob(redis, job);
    return;
  }
  const attempt = await countAttempt(redis, job);
  const tag = `[${job.batch}] ${job.stem}`;
  if (attempt > opts.maxAttempts) {
    const error = `gave up after ${opts.maxAttempts} deliveries: each worker that took it ` +
      "stopped before finishing (killed, out of memory?)";
    log(`${tag}: ${error}`);
    await markFailed(redis, job, error);
    return;
  }
  log(`${tag}: start${attempt > 1 ? ` (delivery ${attempt}, taken over)` : ""}`);
  const beat = setInterval(() => {
    heartbeat(redis, consumer, job).catch((e) => log(`ERROR heartbeat: ${(e as Error).message}`));
  }, Math.max(100, Math.floor(opts.visibilityMs / 3)));
  const t0 = performance.now();
  try {
    let coco;
    try {
      const fileName = job.file.split("/").pop() ?? job.file;
      coco = await runner.run(info.spec, job.file, fileName);
    } catch (e) {
      const error = (e as Error)?.message ?? String(e);
      log(`${tag}: failed: ${error}`);
      await markFailed(redis, job, error);
      return;
    }
    await Deno.mkdir(info.output, { recursive: true });
    await writeAtomic(join(info.output, `${job.stem}.json`), JSON.stringify(coco), consumer);
    const ms = Math.round(performance.now() - t0);
    await markDone(redis, job, { annotations: coco.annotations.length, ms });
    log(`${tag}: done, ${coco.annotations.length} annotations in ${ms} ms`);
  } finally {
    clearInterval(beat);
  }
}

/** Writes the merged file of every batch that has nothing left and no merge yet. */
async function mergeFinished(redis: Redis, consumer: string, log: (line: string) => void) {
  let ids: string[];
  try {
    ids = await finishedUnmerged(redis);
  } catch {
    return; // Redis away: the loop reports it
  }
  for (const id of ids) {
    if (!await lockMerge(redis, id, consumer, 120_000)) continue;
    try {
      const path = await mergeBatch(redis, id, consumer);
      await markMerged(redis, id);
      log(`[${id}] all images done: merged ${path}`);
    } catch (e) {
      log(`ERROR [${id}] merging: ${(e as Error).message}`);
    }
  }
}
