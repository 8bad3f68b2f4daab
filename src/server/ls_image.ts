/**
 * The image of a Label Studio task, fetched the way label-studio-sdk's `get_local_path`
 * resolves task URLs (label_studio_tools/core/utils/io.py), since that is where ML backends
 * most often fail, every failure here says what to fix:
 *
 * - `data:` URLs are decoded in place.
 * - Label Studio paths (`/data/upload/...`, `upload/...`, `/data/local-files/?d=...`,
 *   `/storage-data/...`) are fetched from LABEL_STUDIO_URL with LABEL_STUDIO_API_KEY.
 * - Cloud storage URIs (`s3://`, `gs://`, `azure-blob://`) go through Label Studio's presign
 *   endpoint `/tasks/<task id>/presign/?fileuri=...`.
 * - Other http(s) URLs are fetched as they are; the key goes only to Label Studio's own host.
 *
 * Where LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are unset, the routes pass what Label
 * Studio's setup call said (its hostname and the project creator's token).
 *
 * The key is sent as `Authorization: Token <key>`, or `Bearer <key>` for a JWT (Label Studio's
 * personal access tokens), as the SDK does.
 */
import { HttpError } from "./errors.ts";

export interface LabelStudioConnection {
  /** LABEL_STUDIO_URL (or LABEL_STUDIO_HOST), e.g. http://localhost:8080; "" when unset. */
  url: string;
  /** LABEL_STUDIO_API_KEY (or LABEL_STUDIO_ACCESS_TOKEN); "" when unset. */
  apiKey: string;
}

/** The connection from the environment (empty fields where unset or not readable). */
export function labelStudioFromEnv(): LabelStudioConnection {
  const get = (name: string) => {
    try {
      return Deno.env.get(name) ?? "";
    } catch {
      return ""; // no --allow-env
    }
  };
  return {
    url: (get("LABEL_STUDIO_URL") || get("LABEL_STUDIO_HOST")).trim(),
    apiKey: (get("LABEL_STUDIO_API_KEY") || get("LABEL_STUDIO_ACCESS_TOKEN")).trim(),
  };
}

const FETCH_TIMEOUT_MS = 60_000;

function isJwt(token: string): boolean {
  const parts = token.split(".");
  if (parts.length !== 3) return false;
  try {
    const header = JSON.parse(atob(parts[0].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof header === "object" && header !== null && "alg" in header;
  } catch {
    return false;
  }
}

function decodeDataUrl(url: string, maxBytes: number): Uint8Array {
  const comma = url.indexOf(",");
  if (comma < 0) throw new HttpError(400, "task image: malformed data: URL (no comma)");
  const meta = url.slice(5, comma);
  const payload = url.slice(comma + 1);
  let bytes: Uint8Array;
  try {
    bytes = /;base64$/i.test(meta)
      ? Uint8Array.fromBase64(decodeURIComponent(payload).replace(/\s+/g, ""))
      : new TextEncoder().encode(decodeURIComponent(payload));
  } catch {
    throw new HttpError(400, "task image: the data: URL's payload is not valid base64");
  }
  if (bytes.length > maxBytes) {
    throw new HttpError(413, `task image: data: URL over the limit of ${maxBytes} bytes`);
  }
  return bytes;
}

/** The absolute URL to fetch for a task's image value, and whether it is Label Studio's. */
export function resolveTaskImageUrl(
  value: string,
  ls: LabelStudioConnection,
  taskId?: unknown,
): { url: string; labelStudio: boolean } {
  let path = value.trim();
  if (path.startsWith("upload/") || path.startsWith("/upload/")) {
    path = "/data" + (path.startsWith("/") ? "" : "/") + path;
  }
  const cloud = /^(s3|gs|azure-blob):\/\//i.test(path);
  const relative = path.startsWith("/") && !path.startsWith("//");
  if (cloud || relative) {
    if (!ls.url) {
      throw new HttpError(
        400,
        `task image "${value.slice(0, 200)}" is stored in Label Studio: start wgsam with ` +
          `LABEL_STUDIO_URL=http://<label-studio-host>:8080 (as this server reaches it) and ` +
          `LABEL_STUDIO_API_KEY=<your access token from Account & Settings>, or connect the ` +
          `model again in Label Studio (its setup call tells wgsam both)`,
      );
    }
    if (!/^https?:\/\//i.test(ls.url)) {
      throw new HttpError(
        400,
        `LABEL_STUDIO_URL "${ls.url.slice(0, 200)}" must start with http:// or https://`,
      );
    }
    if (!ls.apiKey) {
      throw new HttpError(
        400,
        `task image "${value.slice(0, 200)}" is stored in Label Studio: set ` +
          `LABEL_STUDIO_API_KEY to an access token (Label Studio: Account & Settings)`,
      );
    }
    const base = ls.url.replace(/\/+$/, "");
    if (cloud) {
      if (taskId === undefined || taskId === null) {
        throw new HttpError(
          400,
          `task image "${value.slice(0, 200)}": a cloud URI needs the task id`,
        );
      }
      return {
        url: `${base}/tasks/${encodeURIComponent(String(taskId))}/presign/?fileuri=${
          encodeURIComponent(path)
        }`,
        labelStudio: true,
      };
    }
    return { url: base + path, labelStudio: true };
  }
  if (/^https?:\/\//i.test(path)) {
    let sameHost = false;
    try {
      sameHost = !!ls.url && new URL(path).host === new URL(ls.url).host;
    } catch {
      throw new HttpError(400, `task image: malformed URL "${value.slice(0, 200)}"`);
    }
    return { url: path, labelStudio: sameHost };
  }
  throw new HttpError(
    400,
    `task image "${value.slice(0, 200)}": wgsam reads data: URLs, http(s) URLs and Label ` +
      `Studio paths (/data/..., s3://, gs://, azure-blob://)`,
  );
}

/** The bytes of a task's image; HttpErrors that say what went wrong and what to fix. */
export async function fetchTaskImage(
  value: unknown,
  ls: LabelStudioConnection,
  opts: { maxBytes: number; taskId?: unknown; timeoutMs?: number },
): Promise<Uint8Array> {
  if (typeof value !== "string" || value.trim() === "") {
    throw new HttpError(400, "the task's image field is not a URL string");
  }
  if (/^data:/i.test(value)) return decodeDataUrl(value.trim(), opts.maxBytes);
  const { url, labelStudio } = resolveTaskImageUrl(value, ls, opts.taskId);
  const headers: Record<string, string> = {};
  if (labelStudio && ls.apiKey) {
    headers.authorization = `${isJwt(ls.apiKey) ? "Bearer" : "Token"} ${ls.apiKey}`;
  }
  const where = labelStudio ? `Label Studio at ${ls.url}` : new URL(url).host;
  let res: Response;
  try {
    res = await fetch(url, {
      headers,
      signal: AbortSignal.timeout(opts.timeoutMs ?? FETCH_TIMEOUT_MS),
    });
  } catch (e) {
    throw new HttpError(
      502,
      `could not fetch the task image ${url.slice(0, 300)} from ${where}: ` +
        `${(e as Error).message}` +
        (labelStudio
          ? " (is LABEL_STUDIO_URL the address this server reaches Label Studio at?)"
          : ""),
    );
  }
  if (!res.ok) {
    await res.body?.cancel();
    const hint = res.status === 401 || res.status === 403
      ? labelStudio
        ? ": check LABEL_STUDIO_API_KEY (a valid access token of a user of that project)"
        : ": that host needs credentials wgsam does not send"
      : res.status === 404
      ? ": no such file there"
      : "";
    throw new HttpError(
      502,
      `${where} answered ${res.status} for the task image ${url.slice(0, 300)}${hint}`,
    );
  }
  const declared = Number(res.headers.get("content-length") ?? NaN);
  if (declared > opts.maxBytes) {
    await res.body?.cancel();
    throw new HttpError(
      413,
      `task image over the limit of ${opts.maxBytes} bytes (--max-upload-mb)`,
    );
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (res.body) {
    for await (const chunk of res.body) {
      total += chunk.byteLength;
      if (total > opts.maxBytes) {
        throw new HttpError(
          413,
          `task image over the limit of ${opts.maxBytes} bytes (--max-upload-mb)`,
        );
      }
      chunks.push(chunk);
    }
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
