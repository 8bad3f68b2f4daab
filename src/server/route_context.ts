/**
 * What the routes of the annotation-tool surfaces (cvat.ts, label_studio.ts) get from the
 * application: the same engine, queue, image store, limits and log as the wgsam API, so their
 * images go through the same decoding checks, cache and GPU queue, and their requests through
 * the same handler (logging, error answers, and whatever checks the handler makes).
 */
import type { RgbImage } from "../types.ts";
import type { MaskSource } from "../amg/mod.ts";
import type { Engine } from "./engine.ts";
import type { ServerDetector } from "./detector.ts";
import type { Limits } from "./limits.ts";
import { HttpError } from "./errors.ts";

export interface StoredImage {
  id: string;
  image: RgbImage;
}

export interface RouteContext {
  readonly engine: Engine;
  readonly detector: ServerDetector | null;
  readonly limits: Readonly<Limits>;
  readonly log: (line: string) => void;
  /** Decodes, checks, encodes and stores image bytes exactly as POST /api/images does. */
  ingestImage(bytes: Uint8Array): Promise<StoredImage>;
  /** GPU work on a stored image, in the queue, with the engine's current image set to it. */
  onImage<T>(stored: StoredImage, job: () => Promise<T>): Promise<T>;
  /** GPU work in the queue under the request time limit; the signal aborts at that limit. */
  onGpu<T>(job: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /** The engine's mask source for segment-everything, stopping once `signal` aborts. */
  maskSource(signal: AbortSignal): MaskSource;
}

/** A group of routes: its answer, or null when the request is not one of its routes. */
export type ExtraRoutes = (req: Request, method: string, path: string) => Promise<Response | null>;

/**
 * Refuses a body that is not declared `application/json` (415). Label Studio and CVAT always
 * declare it, and a browser can only send another site's page a JSON type after a CORS
 * preflight, which wgsam never grants: without this check any web page could post
 * `text/plain` JSON to these routes (a "simple request").
 */
export function requireJson(req: Request): void {
  const type = (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/json") {
    throw new HttpError(
      415,
      `Content-Type must be application/json, got "${type.slice(0, 80)}"`,
    );
  }
}

/** Largest JSON body carrying one base64 image: the upload bound, grown by base64's 4/3. */
export function base64JsonLimit(limits: Readonly<Limits>): number {
  return Math.ceil(limits.maxUploadBytes * 4 / 3) + 1024 * 1024;
}

/**
 * Refuses prompt coordinates more than `coordMargin` of the longer side outside the image (the
 * rule of /segment): a click there is a mistake, not a prompt.
 */
export function checkPromptInImage(
  coords: readonly (readonly number[])[],
  width: number,
  height: number,
  limits: Readonly<Limits>,
  what: string,
): void {
  const margin = limits.coordMargin * Math.max(width, height);
  for (const [x, y] of coords) {
    if (x < -margin || x > width + margin || y < -margin || y > height + margin) {
      throw new HttpError(
        400,
        `${what} (${x}, ${y}) is outside the ${width}x${height} image ` +
          `(at most ${margin} pixels beyond its edges)`,
      );
    }
  }
}
