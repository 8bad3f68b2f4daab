/**
 * Request bodies under a byte limit: the limit is checked against Content-Length first and then
 * while streaming, so an oversized or lying client never makes the server hold more than the
 * limit. Image uploads come raw (Content-Type image/png or image/jpeg, or
 * application/octet-stream) or as multipart/form-data with the file in the field "image".
 */
import { HttpError } from "./errors.ts";

/** How long a client may take to send its whole body: a slow client must not hold a request open forever. */
export const BODY_TIMEOUT_MS = 60_000;

/**
 * The bytes that all requests together may hold in memory while their bodies arrive and are
 * decoded: each request takes its share through a `BodyLease` and gives it back when it ends.
 * Past the bound, a request is refused with a 503 (Retry-After) as early as its Content-Length
 * tells, instead of the server buffering any number of large uploads at once.
 */
export class ByteBudget {
  used = 0;
  constructor(readonly maxBytes: number, readonly retryAfterS = 2) {}

  lease(): BodyLease {
    return new BodyLease(this);
  }
}

export class BodyLease {
  private held = 0;
  constructor(private readonly budget: ByteBudget) {}

  /** Holds `n` more bytes, or throws a 503 when the budget has not that much left. */
  take(n: number): void {
    const b = this.budget;
    if (b.used + n > b.maxBytes) {
      throw new HttpError(
        503,
        `server busy: request bodies in progress already hold ${b.used} of ${b.maxBytes} bytes`,
        { "retry-after": String(b.retryAfterS) },
      );
    }
    b.used += n;
    this.held += n;
  }

  /** Gives back every byte this request held (idempotent). */
  release(): void {
    this.budget.used -= this.held;
    this.held = 0;
  }
}

export async function readBodyLimited(
  req: Request,
  maxBytes: number,
  timeoutMs: number = BODY_TIMEOUT_MS,
  lease?: BodyLease,
): Promise<Uint8Array<ArrayBuffer>> {
  const declared = req.headers.get("content-length");
  let reserved = 0;
  if (declared !== null) {
    const n = Number(declared);
    if (!Number.isFinite(n) || n < 0) throw new HttpError(400, "bad Content-Length");
    if (n > maxBytes) throw tooLarge(maxBytes);
    // Before a byte is read: a busy server says so at once.
    lease?.take(n);
    reserved = n;
  }
  if (!req.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HttpError(408, `request body not received within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
  });
  try {
    while (true) {
      const { done, value } = await Promise.race([reader.read(), deadline]);
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge(maxBytes);
      }
      if (total > reserved) {
        lease?.take(total - reserved);
        reserved = total;
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof HttpError) {
      await reader.cancel().catch(() => {});
      throw e;
    }
    throw new HttpError(400, `could not read the request body: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  return new Uint8Array(await new Blob(chunks as Uint8Array<ArrayBuffer>[]).arrayBuffer());
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, `request body over the limit of ${maxBytes} bytes`);
}

/** The JSON object of a request body; 400 for anything that is not one JSON object. */
export async function readJsonObject(
  req: Request,
  maxBytes: number,
  lease?: BodyLease,
): Promise<Record<string, unknown>> {
  const type = mediaType(req);
  const bytes = await readBodyLimited(req, maxBytes, BODY_TIMEOUT_MS, lease);
  // Only JSON: a cross-site form (text/plain, form-urlencoded) cannot send it without a CORS
  // preflight. An empty body with no type at all is the "{}" of a bare curl -X POST.
  if (type !== "application/json" && (type !== "" || bytes.length > 0)) {
    throw new HttpError(
      415,
      `unsupported Content-Type "${type.slice(0, 100)}": send application/json ` +
        "(curl: --json or -H 'content-type: application/json')",
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, "request body is not UTF-8");
  }
  if (text.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `malformed JSON: ${(e as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(400, "request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/** The request's media type, lower case, without parameters ("" when absent). */
function mediaType(req: Request): string {
  return (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
}

const RAW_IMAGE_TYPES = ["image/png", "image/jpeg", "image/jpg", "application/octet-stream"];

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** PNG signature or JPEG SOI marker at the start. */
function looksLikeImage(bytes: Uint8Array): boolean {
  if (PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return true;
  return bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/**
 * The image bytes of an upload, raw or from the multipart field "image". A raw body may also
 * come as application/x-www-form-urlencoded (curl's default) when it starts as a PNG or JPEG.
 */
export async function readImageUpload(
  req: Request,
  maxBytes: number,
  lease?: BodyLease,
): Promise<Uint8Array> {
  const type = mediaType(req);
  if (type === "multipart/form-data") {
    // The whole body is bounded before the multipart parser sees it.
    const bytes = await readBodyLimited(req, maxBytes, BODY_TIMEOUT_MS, lease);
    lease?.take(bytes.length); // the parser's copy of the file
    let form: FormData;
    try {
      form = await new Response(bytes as Uint8Array<ArrayBuffer>, {
        headers: { "content-type": req.headers.get("content-type")! },
      })
        .formData();
    } catch (e) {
      throw new HttpError(400, `malformed multipart body: ${(e as Error).message}`);
    }
    const field = form.get("image");
    if (field === null) throw new HttpError(400, 'multipart body has no field "image"');
    if (typeof field === "string") {
      throw new HttpError(400, 'multipart field "image" must be a file, not text');
    }
    return new Uint8Array(await field.arrayBuffer());
  }
  if (type === "" || RAW_IMAGE_TYPES.includes(type)) {
    return await readBodyLimited(req, maxBytes, BODY_TIMEOUT_MS, lease);
  }
  if (type === "application/x-www-form-urlencoded") {
    // curl's --data-binary @photo.jpg sends this type unless told otherwise: a PNG or JPEG
    // body under it is taken as the raw upload it is; anything else is still refused.
    const bytes = await readBodyLimited(req, maxBytes, BODY_TIMEOUT_MS, lease);
    if (looksLikeImage(bytes)) return bytes;
  }
  throw new HttpError(
    415,
    `unsupported Content-Type "${
      type.slice(0, 100)
    }": send image/png, image/jpeg or multipart/form-data`,
  );
}
