/**
 * Worker entry of the server's image decoder (see decode.ts): PNG/JPEG bytes in, RGB pixels
 * out, off the event loop so that a slow decode never stalls other requests and can be ended
 * (Worker.terminate) at its time limit.
 */
import { decodeImage, ImageDecodeError } from "../image.ts";
import { countJpegScans } from "./jpeg_scans.ts";

export interface DecodeJob {
  id: number;
  bytes: Uint8Array;
  maxPixels: number;
  maxJpegScans: number;
}

export type DecodeReply =
  | { id: number; ok: true; width: number; height: number; data: Uint8Array }
  | { id: number; ok: false; kind: "decode" | "limit" | "internal"; message: string };

/** The worker's global scope, typed here rather than through the deno.worker lib. */
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<DecodeJob>) => void) | null;
  postMessage(message: DecodeReply | "ready", transfer?: ArrayBuffer[]): void;
};

scope.onmessage = async (event: MessageEvent<DecodeJob>) => {
  const { id, bytes, maxPixels, maxJpegScans } = event.data;
  let reply: DecodeReply;
  try {
    if (bytes[0] === 0xff && bytes[1] === 0xd8) {
      const scans = countJpegScans(bytes);
      if (scans > maxJpegScans) {
        throw new LimitError(
          `JPEG has ${scans} scans, over the limit of ${maxJpegScans} (each scan is another ` +
            "pass over the whole image)",
        );
      }
    }
    const image = await decodeImage(bytes, { maxPixels });
    reply = { id, ok: true, width: image.width, height: image.height, data: image.data };
    scope.postMessage(reply, [image.data.buffer as ArrayBuffer]);
    return;
  } catch (e) {
    const kind = e instanceof LimitError
      ? "limit"
      : e instanceof ImageDecodeError
      ? "decode"
      : "internal";
    reply = { id, ok: false, kind, message: (e as Error)?.message ?? String(e) };
  }
  scope.postMessage(reply);
};

class LimitError extends Error {}

// Modules are loaded: the host starts each job's clock from here on.
scope.postMessage("ready");
