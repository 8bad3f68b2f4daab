/**
 * Downloads a registered checkpoint, verifies it and converts it once:
 *
 *   <dir>/<fileName>.partial  bytes as they arrive; an interrupted transfer is resumed from
 *                             its length with an HTTP Range request (within one call, and
 *                             again by the next call);
 *   <dir>/<fileName>          renamed into place only after its size and MD5 match;
 *   <dir>/<name>.safetensors  written by convertCheckpoint (it appears only when complete).
 *
 * Work already done is skipped: an existing conversion returns at once, an existing
 * checkpoint is verified and converted without touching the network.
 */
import { createHash, type Hash } from "node:crypto";
import { convertCheckpoint } from "./load.ts";
import { checkpointFamily, convertSam2Checkpoint } from "../sam2/load.ts";
import {
  checkpointPath,
  convertedPath,
  downloadUrl,
  formatBytes,
  getModel,
  installInstructions,
  type ModelEntry,
  weightsDirFrom,
} from "./registry.ts";

export type DownloadPhase = "download" | "verify" | "convert";

export interface DownloadProgress {
  model: string;
  phase: DownloadPhase;
  bytesDone: number;
  bytesTotal: number;
  /** Average rate of this phase since it (re)started. */
  bytesPerSecond: number;
}

export interface DownloadOptions {
  /** Default: $WGSAM_WEIGHTS_DIR, else `weights`. Created if missing. */
  weightsDir?: string;
  /** Mirror directory holding `<fileName>`; default $WGSAM_WEIGHTS_URL, else Meta's URL. */
  baseUrl?: string;
  onProgress?: (p: DownloadProgress) => void;
  /** One-line notes on what happens (resuming, restarting, retrying). */
  onNote?: (message: string) => void;
  /** Injected fetch (tests, proxies). */
  fetch?: typeof fetch;
  /** Resumes after a dropped connection within this call before giving up (default 3). */
  retries?: number;
  /** Pause before each resume, ms (default 1000). */
  retryDelayMs?: number;
  signal?: AbortSignal;
}

export interface DownloadResult {
  model: string;
  /** The verified checkpoint. */
  checkpoint: string;
  /** The converted wgsam safetensors. */
  safetensors: string;
  /** Bytes received over the network by this call. */
  bytesDownloaded: number;
  /** Whether a Range request continued an earlier partial transfer. */
  resumed: boolean;
  /** Whether this call wrote the safetensors (false when it existed already). */
  converted: boolean;
}

const READ_CHUNK = 1 << 20;

/** Errors after which retrying cannot help (HTTP 404, wrong size or digest, ...). */
class FatalDownloadError extends Error {}

/** An error's message followed by its causes' ("fetch failed: error sending request ..."). */
export function errorChain(e: unknown): string {
  const parts: string[] = [];
  for (let err = e, depth = 0; err !== undefined && err !== null && depth < 5; depth++) {
    const message = err instanceof Error ? err.message : String(err);
    if (message && !parts.includes(message)) parts.push(message);
    err = err instanceof Error ? err.cause : undefined;
  }
  return parts.join(": ");
}

async function exists(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

async function removeIfPresent(path: string) {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array) {
  let at = 0;
  while (at < bytes.length) at += await file.write(bytes.subarray(at));
}

/** Feeds the first `length` bytes of `path` (all when omitted) to `hash`, chunk by chunk. */
async function hashFile(
  hash: Hash,
  path: string,
  length: number | undefined,
  onBytes?: (done: number) => void,
): Promise<number> {
  const file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(READ_CHUNK);
  let done = 0;
  try {
    while (length === undefined || done < length) {
      const want = length === undefined ? buffer.length : Math.min(buffer.length, length - done);
      const n = await file.read(buffer.subarray(0, want));
      if (n === null) break;
      hash.update(buffer.subarray(0, n));
      done += n;
      onBytes?.(done);
    }
  } finally {
    file.close();
  }
  return done;
}

/** MD5 of a file as 32 lowercase hex digits, streamed (constant memory). */
export async function md5File(path: string, onBytes?: (done: number) => void): Promise<string> {
  const hash = createHash("md5");
  await hashFile(hash, path, undefined, onBytes);
  return hash.digest("hex");
}

function progressEmitter(model: string, onProgress?: (p: DownloadProgress) => void) {
  return (phase: DownloadPhase, total: number) => {
    const started = performance.now();
    let base = -1;
    return (done: number, bytesTotal = total) => {
      if (!onProgress) return;
      if (base < 0) base = done;
      const seconds = (performance.now() - started) / 1000;
      const rate = seconds > 0 ? (done - base) / seconds : 0;
      onProgress({ model, phase, bytesDone: done, bytesTotal, bytesPerSecond: rate });
    };
  };
}

function parseContentRange(value: string | null): { start: number; total: number | null } | null {
  const m = value?.match(/^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i);
  if (!m) return null;
  return { start: Number(m[1]), total: m[3] === "*" ? null : Number(m[3]) };
}

const delay = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });

/** State of the transfer into `<file>.partial`: its length and the MD5 over those bytes. */
interface Partial {
  path: string;
  length: number;
  hash: Hash;
}

/**
 * One GET (ranged when `partial` has bytes) appended to the partial file. Returns when the
 * body ends; throws FatalDownloadError for what a retry cannot fix, anything else for a
 * dropped connection.
 */
async function transferOnce(
  entry: ModelEntry,
  url: string,
  partial: Partial,
  opts: DownloadOptions,
  progress: (done: number) => void,
  counters: { received: number; resumed: boolean },
  /** The expected size: the entry's, else learned from the server's first answer. */
  size: { bytes: number | undefined } = { bytes: entry.bytes },
): Promise<void> {
  const fetchFn = opts.fetch ?? fetch;
  const note = opts.onNote ?? (() => {});
  const headers: Record<string, string> = {};
  if (partial.length > 0) headers.Range = `bytes=${partial.length}-`;
  const res = await fetchFn(url, { headers, signal: opts.signal });
  if (res.status === 416 && partial.length > 0) {
    await res.body?.cancel();
    if (partial.length === size.bytes) return; // complete already
    note(`server refused to resume at ${partial.length} bytes; restarting from 0`);
    restart(partial);
    return await transferOnce(entry, url, partial, opts, progress, counters, size);
  } else if (res.status === 206 && partial.length > 0) {
    const range = parseContentRange(res.headers.get("content-range"));
    if (size.bytes === undefined && range?.total != null) size.bytes = range.total;
    if (range?.total != null && range.total !== size.bytes) {
      await res.body?.cancel();
      throw new FatalDownloadError(
        `${url} is ${range.total} bytes, expected ${size.bytes}: not the published ${entry.fileName}`,
      );
    }
    if (range?.start !== partial.length) {
      await res.body?.cancel();
      note(`server answered the Range request with another range; restarting from 0`);
      restart(partial);
      return await transferOnce(entry, url, partial, opts, progress, counters, size);
    }
    counters.resumed = true;
    note(`resuming at ${formatBytes(partial.length)} of ${formatBytes(size.bytes)} (HTTP 206)`);
  } else if (res.ok) {
    if (partial.length > 0) {
      note(`server ignored the Range request (HTTP ${res.status}); restarting from 0`);
      restart(partial);
    }
    const length = res.headers.get("content-length");
    if (size.bytes === undefined && length !== null) size.bytes = Number(length);
    if (length !== null && Number(length) !== size.bytes) {
      await res.body?.cancel();
      throw new FatalDownloadError(
        `${url} is ${length} bytes, expected ${size.bytes}: not the published ${entry.fileName}`,
      );
    }
  } else {
    await res.body?.cancel();
    throw new FatalDownloadError(`GET ${url}: HTTP ${res.status} ${res.statusText}`.trim());
  }
  if (!res.body) throw new FatalDownloadError(`GET ${url}: empty response`);

  // Cut the file to the bytes the hash covers (a failed write may have left more), then append.
  const file = await Deno.open(partial.path, { write: true, create: true });
  try {
    await file.truncate(partial.length);
    await file.seek(partial.length, Deno.SeekMode.Start);
    progress(partial.length);
    for await (const chunk of res.body) {
      if (size.bytes !== undefined && partial.length + chunk.length > size.bytes) {
        throw new FatalDownloadError(
          `${url} sent more than the ${size.bytes} bytes of the published ${entry.fileName}`,
        );
      }
      await writeAll(file, chunk);
      partial.hash.update(chunk);
      partial.length += chunk.length;
      counters.received += chunk.length;
      progress(partial.length);
    }
  } finally {
    file.close();
  }
  if (size.bytes !== undefined && partial.length < size.bytes) {
    throw new Error(`connection closed at ${partial.length} of ${size.bytes} bytes`);
  }
}

function restart(partial: Partial) {
  partial.length = 0;
  partial.hash = createHash("md5");
}

/** Downloads `entry` into `<dest>.partial`, verifies size and MD5, renames it to `dest`. */
async function fetchVerified(
  entry: ModelEntry,
  dest: string,
  opts: DownloadOptions,
  phase: ReturnType<typeof progressEmitter>,
): Promise<{ received: number; resumed: boolean }> {
  const url = downloadUrl(entry, opts.baseUrl);
  const note = opts.onNote ?? (() => {});
  const partial: Partial = { path: `${dest}.partial`, length: 0, hash: createHash("md5") };
  const previous = await exists(partial.path);
  if (previous && entry.bytes !== undefined && previous.size > entry.bytes) {
    note(`${partial.path} is longer than the published file; starting afresh`);
    await Deno.remove(partial.path);
  } else if (previous && previous.size > 0) {
    // The digest covers the whole file, so the bytes already here are hashed first.
    const verify = phase("verify", previous.size);
    partial.length = await hashFile(partial.hash, partial.path, previous.size, verify);
  }
  const counters = { received: 0, resumed: false };
  const retries = opts.retries ?? 3;
  const size = { bytes: entry.bytes };
  for (let attempt = 0;; attempt++) {
    const progress = phase("download", size.bytes ?? 0);
    try {
      await transferOnce(entry, url, partial, opts, progress, counters, size);
      break;
    } catch (e) {
      if (e instanceof FatalDownloadError) {
        await removeIfPresent(partial.path);
        throw new Error(`download of ${entry.name} failed: ${e.message}`);
      }
      // fetch's own message is just "fetch failed"; the cause says why (DNS, refused, TLS).
      const reason = errorChain(e);
      if (opts.signal?.aborted || attempt >= retries) {
        const kept = partial.length > 0
          ? `; ${formatBytes(partial.length)} kept in ${partial.path}: run the same command ` +
            "again to resume"
          : "";
        throw new Error(
          `download of ${entry.name} from ${url} failed after ${attempt + 1} attempt(s) ` +
            `(${reason})${kept}.\n${installInstructions(entry, opts.weightsDir)}`,
        );
      }
      note(
        (counters.received === 0
          ? `could not download from ${new URL(url).host} (${reason})`
          : `connection lost at ${formatBytes(partial.length)} (${reason})`) +
          `; retrying (${attempt + 1}/${retries})`,
      );
      await delay(opts.retryDelayMs ?? 1000, opts.signal);
    }
  }
  const actual = partial.hash.digest("hex");
  if (entry.md5 === undefined) {
    note(`${entry.fileName}: MD5 ${actual} (not verified: no published digest)`);
  } else if (actual !== entry.md5) {
    await removeIfPresent(partial.path);
    throw new Error(
      `download of ${entry.name} failed: ${entry.fileName} from ${url} has MD5 ${actual}, ` +
        `expected ${entry.md5}; the bad file was deleted (a corrupted transfer or a mirror ` +
        "serving another file): run again to download afresh",
    );
  }
  await Deno.rename(partial.path, dest);
  return counters;
}

/**
 * Makes `<weightsDir>/<name>.safetensors` exist for a registered model (or a custom entry):
 * download with resume, size and MD5 check, conversion. See the module comment for files.
 */
export async function downloadModel(
  model: string | ModelEntry,
  opts: DownloadOptions = {},
): Promise<DownloadResult> {
  const entry = typeof model === "string" ? getModel(model) : model;
  if (entry.bundledPath !== undefined) {
    throw new Error(
      `model '${entry.name}' is bundled at ${entry.bundledPath}; nothing to download`,
    );
  }
  const dir = weightsDirFrom(opts.weightsDir);
  const dirOpts = { ...opts, weightsDir: dir };
  await Deno.mkdir(dir, { recursive: true });
  const checkpoint = checkpointPath(entry, dir);
  const safetensors = convertedPath(entry, dir);
  const result: DownloadResult = {
    model: entry.name,
    checkpoint,
    safetensors,
    bytesDownloaded: 0,
    resumed: false,
    converted: false,
  };
  if (await exists(safetensors)) return result;
  const phase = progressEmitter(entry.name, opts.onProgress);

  const present = await exists(checkpoint);
  if (present) {
    // Placed by hand or left by an earlier run: check it is the published file, keep it if
    // not (it is the user's file) but refuse to convert it.
    if (entry.bytes !== undefined && present.size !== entry.bytes) {
      throw new Error(
        `${checkpoint} has ${present.size} bytes, the published ${entry.fileName} has ` +
          `${entry.bytes}; delete it and run again`,
      );
    }
    // Without a published digest (SAM 2.1) there is nothing to verify it against.
    if (entry.md5 !== undefined) {
      const actual = await md5File(checkpoint, phase("verify", present.size));
      if (actual !== entry.md5) {
        throw new Error(
          `${checkpoint} has MD5 ${actual}, expected ${entry.md5}: not the published ` +
            `${entry.fileName}; delete it and run again`,
        );
      }
    }
  } else {
    const counters = await fetchVerified(entry, checkpoint, dirOpts, phase);
    result.bytesDownloaded = counters.received;
    result.resumed = counters.resumed;
  }

  const converting = phase("convert", 0);
  const onConvert = (p: { bytesDone: number; bytesTotal: number }) =>
    converting(p.bytesDone, p.bytesTotal);
  if (await checkpointFamily(checkpoint) === "sam2") {
    await convertSam2Checkpoint(checkpoint, safetensors, entry.sam2Hints, onConvert);
  } else {
    await convertCheckpoint(checkpoint, safetensors, onConvert);
  }
  result.converted = true;
  return result;
}

/** A progress display on stderr (or `write`): redrawn in place on a terminal, else a line every ~10%. */
export function progressBar(
  opts: { write?: (text: string) => void; tty?: boolean } = {},
): { update: (p: DownloadProgress) => void; note: (message: string) => void; finish: () => void } {
  const encoder = new TextEncoder();
  const write = opts.write ?? ((text: string) => {
    const bytes = encoder.encode(text);
    let at = 0;
    while (at < bytes.length) at += Deno.stderr.writeSync(bytes.subarray(at));
  });
  const tty = opts.tty ?? Deno.stderr.isTerminal();
  const labels: Record<DownloadPhase, string> = {
    download: "downloading",
    verify: "checking MD5",
    convert: "converting",
  };
  let key = "";
  let lastDecile = -1;
  let lastDraw = 0;
  let lineOpen = false;
  const endLine = () => {
    if (lineOpen) write("\n");
    lineOpen = false;
  };
  const update = (p: DownloadProgress) => {
    const phaseKey = `${p.model}/${p.phase}`;
    if (phaseKey !== key) {
      endLine();
      key = phaseKey;
      lastDecile = -1;
      lastDraw = 0;
    }
    const fraction = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 1;
    const percent = Math.floor(100 * fraction);
    const complete = p.bytesDone >= p.bytesTotal;
    const mb = (b: number) => (b / 1e6).toFixed(1);
    const rate = p.bytesPerSecond > 0 ? `  ${mb(p.bytesPerSecond)} MB/s` : "";
    const text = `${p.model}: ${labels[p.phase]} ${String(percent).padStart(3)}%  ` +
      `${mb(p.bytesDone)} of ${mb(p.bytesTotal)} MB${rate}`;
    if (tty) {
      const now = performance.now();
      if (!complete && now - lastDraw < 100) return;
      lastDraw = now;
      write(`\r${text}\x1b[K`);
      lineOpen = true;
      if (complete) endLine();
    } else {
      const decile = Math.floor(percent / 10);
      if (decile === lastDecile) return;
      lastDecile = decile;
      write(`${text}\n`);
    }
  };
  return {
    update,
    note: (message: string) => {
      endLine();
      write(`${message}\n`);
    },
    finish: endLine,
  };
}
