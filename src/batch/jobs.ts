/**
 * Batch jobs on Redis: one job per image, any number of workers on any host.
 *
 * The queue is a Redis Stream with one consumer group (XADD, XREADGROUP, XAUTOCLAIM): a job
 * read by a worker stays in the group's pending list until that worker acknowledges it; a
 * worker that dies (SIGKILL, power) leaves it there, and once it has been idle longer than the
 * visibility timeout another worker claims it. A working worker keeps its job's idle time at
 * zero (XCLAIM ... JUSTID, a heartbeat), so a slow image is not taken from a live worker.
 * Delivery is thus at least once; outputs are idempotent (a file per image written by rename,
 * results in hashes keyed by the image), so a job done twice is still counted and merged once.
 * A job that throws is recorded failed with its error and acknowledged, never retried; a job
 * whose workers keep dying is given up after `maxAttempts` deliveries.
 *
 * Keys (under `wgsam:batch:`):
 *   jobs                    the stream; fields batch, stem, file
 *   ids                     sorted set of batch ids by submit time
 *   open                    set of batch ids whose merged file is not written yet
 *   <id>                    hash: spec (JSON), output, total, submitted_ms, started_ms,
 *                           merged_ms
 *   <id>:done / :failed     hash stem -> JSON {file, ...} / error text
 *   <id>:attempts           hash stem -> deliveries so far
 *   <id>:merging            lock while a worker writes annotations.json
 *
 * A finished job's stream entry is deleted with its acknowledgement; a merged batch's record
 * expires after a week (KEEP_MERGED_S).
 */
import type { Redis } from "../server/redis.ts";
import type { BatchSpec } from "./runner.ts";

export const STREAM = "wgsam:batch:jobs";
export const GROUP = "workers";
const IDS = "wgsam:batch:ids";
const OPEN = "wgsam:batch:open";
const batchKey = (id: string) => `wgsam:batch:${id}`;

export interface Job {
  /** The stream entry id. */
  entry: string;
  batch: string;
  stem: string;
  file: string;
}

export interface BatchInfo {
  id: string;
  spec: BatchSpec;
  output: string;
  total: number;
  submittedMs: number;
  startedMs: number | null;
  mergedMs: number | null;
}

export interface BatchStatus extends BatchInfo {
  done: number;
  failed: number;
  pending: number;
  failures: { stem: string; error: string }[];
}

/** Creates the stream and the group when missing (every client calls it; idempotent). */
export async function ensureGroup(redis: Redis): Promise<void> {
  try {
    await redis.xgroup("CREATE", STREAM, GROUP, "0", "MKSTREAM");
  } catch (e) {
    if (!/BUSYGROUP/.test((e as Error).message)) throw e;
  }
}

/** Enqueues one job per image; returns the new batch's id. */
export async function submitBatch(
  redis: Redis,
  spec: BatchSpec,
  output: string,
  images: { stem: string; file: string }[],
): Promise<string> {
  await ensureGroup(redis);
  const id = crypto.randomUUID().slice(0, 8);
  const now = Date.now();
  const tx = redis.multi()
    .hset(batchKey(id), {
      spec: JSON.stringify(spec),
      output,
      total: images.length,
      submitted_ms: now,
    })
    .zadd(IDS, now, id)
    .sadd(OPEN, id);
  for (const { stem, file } of images) {
    tx.xadd(STREAM, "*", "batch", id, "stem", stem, "file", file);
  }
  await tx.exec();
  return id;
}

export async function batchInfo(redis: Redis, id: string): Promise<BatchInfo | null> {
  const h = await redis.hgetall(batchKey(id));
  if (!h.spec) return null;
  return {
    id,
    spec: JSON.parse(h.spec),
    output: h.output,
    total: Number(h.total),
    submittedMs: Number(h.submitted_ms),
    startedMs: h.started_ms ? Number(h.started_ms) : null,
    mergedMs: h.merged_ms ? Number(h.merged_ms) : null,
  };
}

export async function batchStatus(redis: Redis, id: string): Promise<BatchStatus | null> {
  const info = await batchInfo(redis, id);
  if (!info) return null;
  const [done, failedMap] = await Promise.all([
    redis.hlen(`${batchKey(id)}:done`),
    redis.hgetall(`${batchKey(id)}:failed`),
  ]);
  const failures = Object.entries(failedMap).map(([stem, error]) => ({ stem, error }))
    .sort((a, b) => a.stem.localeCompare(b.stem));
  const failed = failures.length;
  return { ...info, done, failed, pending: Math.max(0, info.total - done - failed), failures };
}

/** Batch ids, oldest first; those whose record expired are dropped from the list. */
export async function batchIds(redis: Redis): Promise<string[]> {
  const ids = await redis.zrange(IDS, "0", "-1");
  const live: string[] = [];
  for (const id of ids) {
    if (await redis.exists(batchKey(id))) live.push(id);
    else await redis.zrem(IDS, id);
  }
  return live;
}

function parseEntries(raw: unknown): Job[] {
  const jobs: Job[] = [];
  for (const [entry, fields] of (raw ?? []) as [string, string[]][]) {
    if (!fields) continue; // deleted from the stream meanwhile
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
    jobs.push({ entry, batch: f.batch, stem: f.stem, file: f.file });
  }
  return jobs;
}

/**
 * The next job for `consumer`: first one another worker left idle past `visibilityMs` (it
 * died), else a new one, waiting at most `blockMs`. Null when there is none.
 */
export async function nextJob(
  redis: Redis,
  consumer: string,
  visibilityMs: number,
  blockMs: number,
): Promise<Job | null> {
  const claimed = await redis.xautoclaim(STREAM, GROUP, consumer, visibilityMs, "0-0", "COUNT", 1);
  const stale = parseEntries((claimed as unknown[])[1]);
  if (stale.length) return stale[0];
  const read = await redis.xreadgroup(
    "GROUP",
    GROUP,
    consumer,
    "COUNT",
    1,
    "BLOCK",
    blockMs,
    "STREAMS",
    STREAM,
    ">",
  ) as [string, unknown][] | null;
  if (!read) return null;
  return parseEntries(read[0][1])[0] ?? null;
}

/** Keeps a job claimed by `consumer` (its idle time back to 0): the visibility heartbeat. */
export async function heartbeat(redis: Redis, consumer: string, job: Job): Promise<void> {
  await redis.xclaim(STREAM, GROUP, consumer, 0, job.entry, "JUSTID");
}

/** Counts a delivery; returns how many there have been, this one included. */
export async function countAttempt(redis: Redis, job: Job): Promise<number> {
  const tx = await redis.multi()
    .hincrby(`${batchKey(job.batch)}:attempts`, job.stem, 1)
    .hsetnx(batchKey(job.batch), "started_ms", Date.now())
    .exec();
  return Number(tx?.[0]?.[1]);
}

/** Records the image done (idempotent) and acknowledges its job. */
export async function markDone(redis: Redis, job: Job, detail: Record<string, unknown>) {
  await redis.multi()
    .hset(`${batchKey(job.batch)}:done`, job.stem, JSON.stringify({ file: job.file, ...detail }))
    .hdel(`${batchKey(job.batch)}:failed`, job.stem)
    .xack(STREAM, GROUP, job.entry)
    .xdel(STREAM, job.entry)
    .exec();
}

/** Records the image failed with its error, unless it is already done, and acknowledges. */
export async function markFailed(redis: Redis, job: Job, error: string) {
  const done = await redis.hexists(`${batchKey(job.batch)}:done`, job.stem);
  const tx = redis.multi();
  if (!done) tx.hset(`${batchKey(job.batch)}:failed`, job.stem, error);
  await tx.xack(STREAM, GROUP, job.entry).xdel(STREAM, job.entry).exec();
}

/** Acknowledges a job without recording anything (its batch is gone). */
export async function dropJob(redis: Redis, job: Job) {
  await redis.multi().xack(STREAM, GROUP, job.entry).xdel(STREAM, job.entry).exec();
}

/** The done images of a batch: stem -> detail. */
export async function doneImages(redis: Redis, id: string): Promise<Map<string, unknown>> {
  const h = await redis.hgetall(`${batchKey(id)}:done`);
  return new Map(Object.entries(h).map(([stem, json]) => [stem, JSON.parse(json)]));
}

/** Batches whose every image is done or failed and whose merged file is not written yet. */
export async function finishedUnmerged(redis: Redis): Promise<string[]> {
  const out: string[] = [];
  for (const id of await redis.smembers(OPEN)) {
    const s = await batchStatus(redis, id);
    if (!s) await redis.srem(OPEN, id);
    else if (s.pending === 0) out.push(id);
  }
  return out;
}

/** Takes the merge lock of a batch for `ttlMs` (another worker may merge after it lapses). */
export async function lockMerge(
  redis: Redis,
  id: string,
  owner: string,
  ttlMs: number,
): Promise<boolean> {
  return (await redis.set(`${batchKey(id)}:merging`, owner, "PX", ttlMs, "NX")) === "OK";
}

/** How long a merged batch's record stays for `batch status`. */
export const KEEP_MERGED_S = 7 * 86400;

export async function markMerged(redis: Redis, id: string): Promise<void> {
  const key = batchKey(id);
  await redis.multi()
    .hset(key, "merged_ms", Date.now())
    .srem(OPEN, id)
    .del(`${key}:merging`)
    .expire(key, KEEP_MERGED_S)
    .expire(`${key}:done`, KEEP_MERGED_S)
    .expire(`${key}:failed`, KEEP_MERGED_S)
    .expire(`${key}:attempts`, KEEP_MERGED_S)
    .exec();
}
