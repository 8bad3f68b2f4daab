/**
 * A loopback HTTP server for download tests (Deno.serve on 127.0.0.1, port 0): serves files
 * with Content-Length and single-range `bytes=N-` requests, and can misbehave on purpose:
 * cut the connection midway, ignore Range, or answer 404.
 */

export interface ServedRequest {
  path: string;
  range: string | null;
  status: number;
}

export interface TestServerOptions {
  /** URL path (e.g. "/m/model.pth") to bytes. */
  files: Record<string, Uint8Array>;
  /** Close the connection after sending this fraction of the requested body... */
  cutAt?: number;
  /** ...on this many first requests (default 1 when cutAt is set). */
  cutTimes?: number;
  /** Answer Range requests with the whole file and 200, as some servers do. */
  ignoreRange?: boolean;
}

export interface TestServer {
  /** Base URL, no trailing slash. */
  url: string;
  requests: ServedRequest[];
  close(): Promise<void>;
}

const CHUNK = 64 * 1024;

/** A body stream of `bytes` that ends (too early, under a full Content-Length) at `stopAt`. */
function bodyStream(bytes: Uint8Array, stopAt: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= stopAt) {
        controller.close();
        return;
      }
      const end = Math.min(stopAt, sent + CHUNK);
      controller.enqueue(bytes.slice(sent, end));
      sent = end;
    },
  });
}

export function startServer(opts: TestServerOptions): TestServer {
  const requests: ServedRequest[] = [];
  let cutsLeft = opts.cutAt === undefined ? 0 : (opts.cutTimes ?? 1);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    const range = req.headers.get("range");
    const file = opts.files[path];
    const log = (status: number) => requests.push({ path, range, status });
    if (!file) {
      log(404);
      return new Response("not found", { status: 404 });
    }
    let start = 0;
    let status = 200;
    const headers = new Headers({ "accept-ranges": "bytes" });
    const m = range?.match(/^bytes=(\d+)-$/);
    if (m && !opts.ignoreRange) {
      start = Number(m[1]);
      if (start >= file.length) {
        log(416);
        return new Response(null, {
          status: 416,
          headers: { "content-range": `bytes */${file.length}` },
        });
      }
      status = 206;
      headers.set("content-range", `bytes ${start}-${file.length - 1}/${file.length}`);
    }
    const body = file.subarray(start);
    headers.set("content-length", String(body.length));
    let stopAt = body.length;
    if (cutsLeft > 0) {
      cutsLeft--;
      stopAt = Math.floor(body.length * opts.cutAt!);
    }
    log(status);
    return new Response(bodyStream(body, stopAt), { status, headers });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}
