/**
 * Errors the server answers with: every failure leaves as JSON `{ "error": "..." }` with a
 * status code, so that clients (and the page) never have to parse HTML or plain text.
 */

/** A failure with the status code and message the client should see. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Extra response headers (Retry-After, Allow). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export function jsonResponse(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

export function errorResponse(
  status: number,
  message: string,
  headers: Record<string, string> = {},
) {
  return jsonResponse({ error: message }, status, headers);
}
