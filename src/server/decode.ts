/**
 * Uploaded PNG/JPEG bytes to RGB pixels through the shared decoder (src/image.ts), with the
 * server's status codes: an image over the size limits is a 413, judged from its header before
 * any pixel is decoded (decompression bombs); anything undecodable is a 400, and so is an image
 * too thin for the model (its short side would be 0 px at the model's input size, `imgSize`),
 * also judged from the header, before any pixel or GPU work.
 *
 * The pixels are decoded in a Worker (decode_worker.ts), never on the event loop: a JPEG with
 * more scans than `maxJpegScans` is refused (413) before decoding, and a decode that runs past
 * its time limit is ended by terminating the worker (413; a fresh worker takes the next one).
 */
import { getPreprocessShape } from "../encoder/preprocess.ts";
import { decodeImage, ImageDecodeError, peekImageSize } from "../image.ts";
import type { DecodeJob, DecodeReply } from "./decode_worker.ts";
import type { RgbImage } from "../types.ts";
import { HttpError } from "./errors.ts";

/** Decodes PNG/JPEG bytes to RGB; `decodeUpload` calls it once the header passed. */
export type PixelDecoder = (bytes: Uint8Array, maxPixels: number) => Promise<RgbImage>;

/** Decoding on this thread, for callers that have no worker (tests of the checks alone). */
export const decodeHere: PixelDecoder = (bytes, maxPixels) => decodeImage(bytes, { maxPixels });

export async function decodeUpload(
  bytes: Uint8Array,
  limits: { maxPixels: number; maxSide: number; imgSize?: number },
  decode: PixelDecoder = decodeHere,
): Promise<RgbImage> {
  if (bytes.length === 0) throw new HttpError(400, "empty image body");
  try {
    const header = peekImageSize(bytes);
    if (!header) throw new HttpError(400, "undecodable image: not a PNG or JPEG");
    const { width, height } = header;
    if (width > limits.maxSide || height > limits.maxSide || width * height > limits.maxPixels) {
      throw new HttpError(
        413,
        `image of ${width}x${height} pixels is over the limit (${limits.maxPixels} pixels, ` +
          `${limits.maxSide} a side)`,
      );
    }
    if (limits.imgSize !== undefined) checkModelShape(width, height, limits.imgSize);
    const image = await decode(bytes, limits.maxPixels);
    // The header's size should be the decoded one; judged again on what was decoded.
    if (limits.imgSize !== undefined) checkModelShape(image.width, image.height, limits.imgSize);
    return image;
  } catch (e) {
    if (e instanceof ImageDecodeError) throw new HttpError(400, `undecodable image: ${e.message}`);
    throw e;
  }
}

/** A 400 for an image the model cannot take (ResizeLongestSide would make a side 0 px). */
function checkModelShape(width: number, height: number, imgSize: number): void {
  try {
    getPreprocessShape(height, width, imgSize);
  } catch (e) {
    if (e instanceof RangeError) throw new HttpError(400, e.message);
    throw e;
  }
}

/**
 * The web Worker as Deno defines it, kept at load time: onnxruntime-web's wasm glue, thinking it
 * runs under Node, replaces `globalThis.Worker` with node:worker_threads' when a detector loads.
 */
const WebWorker = globalThis.Worker;

/**
 * One decode worker, used one job at a time (callers queue), created on first use and replaced
 * after a job that ran out of time. Each job has a time limit and a bound on JPEG scans.
 */
export class WorkerDecoder {
  private worker: Worker | null = null;
  /** Resolves when the current worker has loaded its modules (its clock starts after). */
  private ready: Promise<void> | null = null;
  private nextId = 1;
  private pending: {
    id: number;
    resolve: (image: RgbImage) => void;
    reject: (e: Error) => void;
  } | null = null;

  constructor(private readonly opts: { maxJpegScans: number; timeoutMs: number }) {}

  private start(): Worker {
    const worker = new WebWorker(new URL("./decode_worker.ts", import.meta.url).href, {
      type: "module",
    });
    let markReady!: () => void;
    let failReady!: (e: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    this.ready.catch(() => {});
    worker.onmessage = (event: MessageEvent<DecodeReply | "ready">) => {
      if (event.data === "ready") return markReady();
      const job = this.pending;
      const reply = event.data;
      if (!job || job.id !== reply.id) return;
      this.pending = null;
      if (reply.ok) {
        job.resolve({ width: reply.width, height: reply.height, channels: 3, data: reply.data });
      } else if (reply.kind === "limit") {
        job.reject(new HttpError(413, `image refused: ${reply.message}`));
      } else if (reply.kind === "decode") {
        job.reject(new ImageDecodeError(reply.message));
      } else {
        job.reject(new Error(`image decoder: ${reply.message}`));
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      failReady(new Error(`image decoder crashed: ${event.message}`));
      this.kill();
      this.pending?.reject(new Error(`image decoder crashed: ${event.message}`));
      this.pending = null;
    };
    return worker;
  }

  private kill(): void {
    this.worker?.terminate();
    this.worker = null;
  }

  /** A PixelDecoder bound to this worker, with a time limit of at most `timeoutMs`. */
  decoder(timeoutMs = this.opts.timeoutMs): PixelDecoder {
    return (bytes, maxPixels) => this.decode(bytes, maxPixels, timeoutMs);
  }

  async decode(
    bytes: Uint8Array,
    maxPixels: number,
    timeoutMs = this.opts.timeoutMs,
  ): Promise<RgbImage> {
    if (this.pending) throw new Error("WorkerDecoder: one job at a time");
    const worker = this.worker ??= this.start();
    // Loading the worker's modules is a fixed cost, not the image's: the clock starts after.
    await this.ready;
    if (this.worker !== worker) throw new Error("image decoder closed");
    const limit = Math.min(timeoutMs, this.opts.timeoutMs);
    const id = this.nextId++;
    return await new Promise<RgbImage>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending?.id !== id) return;
        this.pending = null;
        this.kill(); // the only way to stop a decode in progress
        reject(
          new HttpError(
            413,
            `image refused: decoding took longer than ${limit / 1000} s (too large or too ` +
              "complex; progressive JPEGs with many scans are slow)",
          ),
        );
      }, limit);
      this.pending = {
        id,
        resolve: (image) => {
          clearTimeout(timer);
          resolve(image);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const job: DecodeJob = { id, bytes, maxPixels, maxJpegScans: this.opts.maxJpegScans };
      worker.postMessage(job);
    });
  }

  dispose(): void {
    this.pending?.reject(new Error("image decoder closed"));
    this.pending = null;
    this.kill();
  }
}
