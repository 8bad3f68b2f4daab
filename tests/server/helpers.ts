/** Shared helpers of the server tests: requests against an app handler, images, masks. */
import { Image } from "imagescript";
import { cocoDecodeRle, rleToMask } from "../../src/amg/rle.ts";

export const FIXTURE_IMAGE = new URL("../fixtures/sam-tiny/image.png", import.meta.url);

export type Handler = (req: Request) => Promise<Response>;

export const BASE = "http://localhost:8787";

export async function call(
  app: Handler,
  method: string,
  path: string,
  body?: BodyInit | Record<string, unknown> | unknown[],
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  let init: RequestInit = { method, headers };
  if (body !== undefined) {
    const isJson = typeof body === "object" && body !== null &&
      (Array.isArray(body) || Object.getPrototypeOf(body) === Object.prototype);
    init = isJson
      ? {
        method,
        body: JSON.stringify(body),
        headers: { "content-type": "application/json", ...headers },
      }
      : { method, body: body as BodyInit, headers };
  }
  const res = await app(new Request(BASE + path, init));
  const text = await res.text();
  let json: Record<string, unknown> = {};
  if (res.headers.get("content-type")?.startsWith("application/json")) json = JSON.parse(text);
  return { status: res.status, json, headers: res.headers };
}

/** A PNG of w x h with a deterministic pattern (seeded). */
export async function makePng(w: number, h: number, seed = 1): Promise<Uint8Array<ArrayBuffer>> {
  const image = new Image(w, h);
  for (let i = 0; i < w * h; i++) {
    const v = (i * 2654435761 + seed * 97) >>> 0;
    image.bitmap[4 * i] = v & 255;
    image.bitmap[4 * i + 1] = (v >> 8) & 255;
    image.bitmap[4 * i + 2] = (v >> 16) & 255;
    image.bitmap[4 * i + 3] = 255;
  }
  return new Uint8Array(await image.encode(1));
}

export async function makeJpeg(w: number, h: number): Promise<Uint8Array<ArrayBuffer>> {
  const image = new Image(w, h);
  image.fill(0x336699ff);
  return new Uint8Array(await image.encodeJPEG(90));
}

/** Decodes a mask PNG (greyscale 0/255) back to 0/1. */
export async function decodePngMask(
  base64: string,
): Promise<{ mask: Uint8Array; w: number; h: number }> {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const image = await Image.decode(bytes) as Image;
  const mask = new Uint8Array(image.width * image.height);
  for (let i = 0; i < mask.length; i++) mask[i] = image.bitmap[4 * i] > 127 ? 1 : 0;
  return { mask, w: image.width, h: image.height };
}

export function decodeCocoMask(rle: { size: [number, number]; counts: string }): Uint8Array {
  return rleToMask(cocoDecodeRle(rle));
}

export function countDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`mask sizes differ: ${a.length} vs ${b.length}`);
  let n = 0;
  for (let i = 0; i < a.length; i++) if ((a[i] ? 1 : 0) !== (b[i] ? 1 : 0)) n++;
  return n;
}
