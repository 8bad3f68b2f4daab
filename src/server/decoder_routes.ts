/**
 * Routes for the page's own decoder (src/web/decoder/):
 *
 *   GET /api/decoder                      {sha256, url, bytes, arch}: where the weights are
 *   GET /api/decoder/<sha256>.safetensors the prompt encoder + mask decoder tensors
 *                                         (immutable: cached by content hash, ETag, 304)
 *
 * An engine without `decoderWeights` (a stand-in) answers 404: the page decodes on the server.
 */
import type { Engine } from "./engine.ts";
import { HttpError, jsonResponse } from "./errors.ts";

const WEIGHTS_PATH = /^\/api\/decoder\/([0-9a-f]{64})\.safetensors$/;

/** The response to `path` when it is one of these routes, else null. */
export async function decoderRoute(
  engine: Engine,
  req: Request,
  method: string,
  path: string,
): Promise<Response | null> {
  if (path !== "/api/decoder" && !path.startsWith("/api/decoder/")) return null;
  if (method !== "GET") {
    throw new HttpError(405, "method not allowed; use GET", { allow: "GET" });
  }
  if (!engine.decoderWeights) {
    throw new HttpError(404, "this model's decoder cannot run in the page: decode on the server");
  }
  const weights = await engine.decoderWeights();
  const url = `/api/decoder/${weights.sha256}.safetensors`;
  if (path === "/api/decoder") {
    return jsonResponse({
      sha256: weights.sha256,
      url,
      bytes: weights.bytes.length,
      arch: weights.arch,
    });
  }
  const m = WEIGHTS_PATH.exec(path);
  if (!m || m[1] !== weights.sha256) {
    throw new HttpError(404, "no such decoder weights (the model changed?): GET /api/decoder");
  }
  const etag = `"${weights.sha256}"`;
  const headers = {
    etag,
    "cache-control": "public, max-age=31536000, immutable",
  };
  const match = req.headers.get("if-none-match");
  if (match && match.split(",").some((t) => t.trim().replace(/^W\//, "") === etag)) {
    return new Response(null, { status: 304, headers });
  }
  return new Response(weights.bytes as Uint8Array<ArrayBuffer>, {
    headers: { ...headers, "content-type": "application/octet-stream" },
  });
}
