/**
 * The server's TCP front: Deno.serve has no header or keep-alive timeouts and no connection
 * cap, and an accept error (EMFILE: too many open files) ends it. So the public port is our
 * own listener, which relays each connection byte for byte to Deno.serve on a private Unix
 * socket and, from a light reading of the HTTP/1.1 framing in both directions, knows when a
 * connection is waiting for a request and for how long:
 *
 * - a request head must arrive whole within `headerTimeoutMs` of the connection opening (or
 *   of its first byte, on a kept-alive connection);
 * - a kept-alive connection with no request under way is closed after `idleTimeoutMs`;
 * - a request body that stalls after its answer was sent is closed after `idleTimeoutMs`;
 * - a client that does not read its answer for `sendTimeoutMs` is closed;
 * - at most `maxConnections` are open; one more is answered 503 and closed;
 * - accept errors (EMFILE...) are logged and retried; if Deno.serve itself stops, a new one is
 *   started on a fresh socket. Better still, EMFILE is avoided: at start the cap is lowered to
 *   what the descriptors left under the open-file limit (ulimit -n) can hold, since Deno 2.9
 *   can panic when it runs out of descriptors elsewhere.
 *
 * While a request is being worked on (head received, answer not finished) no timer applies:
 * the application's own time limits do.
 */

export interface ConnectionLimits {
  /** Open client connections, at most. */
  maxConnections: number;
  /** Time for a whole request head, ms. */
  headerTimeoutMs: number;
  /** Time a kept-alive connection may wait for its next request, ms. */
  idleTimeoutMs: number;
  /** Bytes of one request head, at most (431 past it). */
  maxHeaderBytes: number;
  /** Time for a client to take (read) one chunk of its answer, ms. */
  sendTimeoutMs: number;
}

export const DEFAULT_CONNECTION_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  // Each relayed connection holds three descriptors (client, relay and Deno.serve's end): 256
  // stays under the common soft limit of 1024 open files.
  maxConnections: 256,
  headerTimeoutMs: 20_000,
  idleTimeoutMs: 10_000,
  maxHeaderBytes: 64 * 1024,
  sendTimeoutMs: 60_000,
});

export interface GuardedServer {
  addr: Deno.NetAddr;
  /** The connection cap in force (lowered to fit the open-file limit). */
  maxConnections: number;
  /** Open client connections now. */
  readonly connections: number;
  /** Resolves when the server has shut down; never rejects. */
  finished: Promise<void>;
  shutdown(): Promise<void>;
}

export interface GuardedServeOptions {
  hostname: string;
  port: number;
  limits?: Partial<ConnectionLimits>;
  log?: (line: string) => void;
  onError?: (error: unknown) => Response | Promise<Response>;
}

/** Body framing of one HTTP/1.1 message, fed bytes until it says where the body ends. */
class BodyReader {
  private remaining = 0;
  private chunkState: "size" | "data" | "crlf" | "trailer" = "size";
  private line = "";
  constructor(readonly mode: "none" | "length" | "chunked" | "close", length = 0) {
    this.remaining = length;
  }

  /** Consumes from `bytes[at..]`; returns the index just past the body, or -1 when not done. */
  feed(bytes: Uint8Array, at: number): number {
    if (this.mode === "none") return at;
    if (this.mode === "close") return -1;
    if (this.mode === "length") {
      const take = Math.min(this.remaining, bytes.length - at);
      this.remaining -= take;
      return this.remaining === 0 ? at + take : -1;
    }
    while (at < bytes.length) {
      if (this.chunkState === "data") {
        const take = Math.min(this.remaining, bytes.length - at);
        this.remaining -= take;
        at += take;
        if (this.remaining === 0) {
          this.chunkState = "crlf";
          this.remaining = 2;
        }
      } else if (this.chunkState === "crlf") {
        const take = Math.min(this.remaining, bytes.length - at);
        this.remaining -= take;
        at += take;
        if (this.remaining === 0) this.chunkState = "size";
      } else {
        // "size" and "trailer" read lines.
        const c = bytes[at++];
        if (c !== 0x0a) {
          if (this.line.length > 4096) throw new Error("chunk line too long");
          if (c !== 0x0d) this.line += String.fromCharCode(c);
          continue;
        }
        const line = this.line;
        this.line = "";
        if (this.chunkState === "trailer") {
          if (line === "") return at;
          continue;
        }
        const size = parseInt(line.split(";")[0].trim(), 16);
        if (!Number.isFinite(size) || size < 0) throw new Error("bad chunk size");
        if (size === 0) this.chunkState = "trailer";
        else {
          this.chunkState = "data";
          this.remaining = size;
        }
      }
    }
    return -1;
  }
}

/**
 * One direction of a connection: heads and bodies in turn. `onHead` reads a head's text and
 * says how its body is framed (and whether it is the last message of the direction).
 */
class MessageStream {
  phase: "head" | "body" = "head";
  /** Bytes of the current head seen so far. */
  headBytes = 0;
  private head = "";
  private tail = "";
  private body: BodyReader | null = null;
  /** Once true, the framing is no longer followed (an upgrade, a read-to-close body). */
  opaque = false;

  constructor(
    private readonly maxHeadBytes: number,
    private readonly onHead: (head: string) => BodyReader,
    private readonly onComplete: () => void,
  ) {}

  feed(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length && !this.opaque) {
      if (this.phase === "head") {
        // Blank lines before a request line are allowed (RFC 9112 2.2).
        if (this.headBytes === 0 && (bytes[at] === 0x0d || bytes[at] === 0x0a)) {
          at++;
          continue;
        }
        const start = at;
        let end = -1;
        for (; at < bytes.length; at++) {
          const c = bytes[at];
          // The last three bytes seen: a head ends at "\n\r\n" or "\n\n".
          this.tail = (this.tail + String.fromCharCode(c)).slice(-3);
          if (c === 0x0a && (this.tail.endsWith("\n\r\n") || this.tail.endsWith("\n\n"))) {
            end = at + 1;
            break;
          }
        }
        const upto = end === -1 ? bytes.length : end;
        this.headBytes += upto - start;
        if (this.headBytes > this.maxHeadBytes) throw new HeadTooLarge();
        this.head += latin1(bytes.subarray(start, upto));
        at = upto;
        if (end === -1) return;
        this.body = this.onHead(this.head);
        this.head = "";
        this.tail = "";
        this.headBytes = 0;
        this.phase = "body";
        if (this.body.mode === "close") this.opaque = true;
      } else {
        const next = this.body!.feed(bytes, at);
        if (next === -1) return;
        at = next;
        this.phase = "head";
        this.onComplete();
      }
    }
  }
}

class HeadTooLarge extends Error {}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return s;
}

function headerValues(head: string, name: string): string[] {
  const out: string[] = [];
  for (const line of head.split(/\r?\n/).slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === name) {
      out.push(line.slice(colon + 1).trim().toLowerCase());
    }
  }
  return out;
}

function bodyOf(head: string, isRequest: boolean): BodyReader {
  const te = headerValues(head, "transfer-encoding").join(",");
  if (te !== "") {
    if (te.split(",").map((s) => s.trim()).at(-1) === "chunked") return new BodyReader("chunked");
    return new BodyReader(isRequest ? "none" : "close");
  }
  const cl = headerValues(head, "content-length");
  if (cl.length > 0) {
    const n = Number(cl[0].split(",")[0]);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error("bad Content-Length");
    return new BodyReader(n === 0 ? "none" : "length", n);
  }
  return new BodyReader(isRequest ? "none" : "close");
}

const encoder = new TextEncoder();

function plainResponse(status: number, reason: string, text: string, extra = ""): Uint8Array {
  const body = JSON.stringify({ error: text });
  return encoder.encode(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${encoder.encode(body).length}\r\nconnection: close\r\n${extra}\r\n${body}`,
  );
}

interface Relay {
  client: Deno.Conn;
  upstream: Deno.Conn | null;
  openedAt: number;
  /** Last byte from the client, ms (performance.now). */
  lastClientByte: number;
  /** When the connection last became idle between requests (a response ended), ms. */
  idleSince: number;
  /** When the current head's first byte came, ms; -1 before. */
  headStartedAt: number;
  firstRequest: boolean;
  requestsWithHead: number;
  responsesDone: number;
  requests: MessageStream;
  closed: boolean;
  close(): void;
}

function isTooManyFiles(e: unknown): boolean {
  const m = String((e as Error)?.message ?? e);
  return /too many open files|os error 24|EMFILE|ENFILE/i.test(m);
}

/** Refusals (503 answers past the connection cap) being written at once, at most. */
const MAX_REFUSING = 16;

/** Descriptors kept free for the GPU driver, workers, files and the process itself. */
const FD_RESERVE = 64;

/**
 * How many more files this process can open, counted by opening /dev/null up to `want` times
 * (then closed at once): null when all `want` opened, or where /dev/null cannot be read. The
 * open-file limit itself (/proc/self/limits) needs --allow-all under Deno, hence the probe.
 */
export function freeDescriptors(want: number): number | null {
  const files: Deno.FsFile[] = [];
  try {
    while (files.length < want) files.push(Deno.openSync("/dev/null"));
    return null;
  } catch (e) {
    return isTooManyFiles(e) ? files.length : null;
  } finally {
    for (const f of files) f.close();
  }
}

/** The connection cap that `free` more descriptors can hold (three per relayed connection). */
export function connectionsFor(free: number | null, wanted: number): number {
  if (free === null) return wanted;
  return Math.max(1, Math.min(wanted, Math.floor((free - FD_RESERVE - MAX_REFUSING) / 3)));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Serves `handler` on hostname:port behind the guarded front (see the module comment). */
export async function serveGuarded(
  opts: GuardedServeOptions,
  handler: (req: Request) => Response | Promise<Response>,
): Promise<GuardedServer> {
  const limits: ConnectionLimits = { ...DEFAULT_CONNECTION_LIMITS, ...opts.limits };
  const log = opts.log ?? ((line: string) => console.error(line));
  const free = freeDescriptors(limits.maxConnections * 3 + FD_RESERVE);
  const cap = connectionsFor(free, limits.maxConnections);
  if (cap < limits.maxConnections) {
    log(
      `at most ${cap} connections (not ${limits.maxConnections}): only ${free} more files can ` +
        "be opened (ulimit -n) and each connection takes three",
    );
    limits.maxConnections = cap;
  }
  let lastComplaint = -Infinity;
  /** Logs at most one line per 5 s: a storm of failures must not flood the log. */
  const complain = (line: string) => {
    const now = performance.now();
    if (now - lastComplaint < 5000) return;
    lastComplaint = now;
    log(line);
  };
  // The public port first: a taken port fails here, before anything else is set up.
  const listener = Deno.listen({ hostname: opts.hostname, port: opts.port });
  const dir = await Deno.makeTempDir({ prefix: "wgsam-http-" });
  /** How the relay reaches Deno.serve: a Unix socket, else (no Unix sockets) loopback TCP. */
  let connectInner: () => Promise<Deno.Conn> = () => Promise.reject(new Error("not started"));
  let inner: Deno.HttpServer | null = null;
  let generation = 0;
  let closing = false;

  const startInner = () => {
    const path = `${dir}/http-${generation++}.sock`;
    const common = { onListen: () => {}, ...(opts.onError ? { onError: opts.onError } : {}) };
    let server: Deno.HttpServer;
    try {
      server = Deno.serve({ transport: "unix", path, ...common }, handler);
      connectInner = () => Deno.connect({ transport: "unix", path });
    } catch {
      const tcp = Deno.serve({ hostname: "127.0.0.1", port: 0, ...common }, handler);
      const port = tcp.addr.port;
      server = tcp;
      connectInner = () => Deno.connect({ hostname: "127.0.0.1", port });
    }
    inner = server;
    server.finished.catch(async (e) => {
      // Deno.serve ends on an accept error (EMFILE): a new one takes over.
      if (closing) return;
      log(`http server stopped (${(e as Error)?.message ?? e}); starting a new one`);
      await sleep(100);
      if (!closing && inner === server) startInner();
    });
  };
  startInner();

  const relays = new Set<Relay>();

  const sweep = setInterval(() => {
    const now = performance.now();
    for (const r of relays) {
      if (r.closed) continue;
      const inFlight = r.requestsWithHead > r.responsesDone;
      if (inFlight) continue;
      const stream = r.requests;
      let deadline: number;
      if (stream.opaque) deadline = r.lastClientByte + limits.idleTimeoutMs;
      else if (stream.phase === "body") deadline = r.lastClientByte + limits.idleTimeoutMs;
      else if (r.firstRequest) deadline = r.openedAt + limits.headerTimeoutMs;
      else if (r.headStartedAt >= 0) deadline = r.headStartedAt + limits.headerTimeoutMs;
      else deadline = r.idleSince + limits.idleTimeoutMs;
      if (now >= deadline) r.close();
    }
  }, Math.max(20, Math.min(250, limits.headerTimeoutMs / 4, limits.idleTimeoutMs / 4)));

  const refuse = async (conn: Deno.Conn, bytes: Uint8Array) => {
    try {
      await Promise.race([conn.write(bytes), sleep(1000)]);
    } catch {
      // The client is gone already.
    }
    try {
      conn.close();
    } catch {
      // closed
    }
  };

  const relay = async (client: Deno.Conn) => {
    const now = performance.now();
    const methods: string[] = [];
    const r: Relay = {
      client,
      upstream: null,
      openedAt: now,
      lastClientByte: now,
      idleSince: now,
      headStartedAt: -1,
      firstRequest: true,
      requestsWithHead: 0,
      responsesDone: 0,
      closed: false,
      requests: new MessageStream(limits.maxHeaderBytes, (head) => {
        r.requestsWithHead++;
        r.headStartedAt = -1;
        methods.push(head.slice(0, head.indexOf(" ")).toUpperCase());
        return bodyOf(head, true);
      }, () => {}),
      close() {
        if (r.closed) return;
        r.closed = true;
        for (const c of [r.client, r.upstream]) {
          try {
            c?.close();
          } catch {
            // closed
          }
        }
      },
    };
    relays.add(r);
    let lastStatus = 0;
    const responses = new MessageStream(Infinity, (head) => {
      lastStatus = Number(head.split(" ")[1]);
      // Informational answers (100 Continue) have no body and are not the answer yet.
      if (lastStatus >= 100 && lastStatus < 200 && lastStatus !== 101) {
        return new BodyReader("none");
      }
      if (lastStatus === 101) return new BodyReader("close");
      const method = methods[0];
      if (method === "HEAD" || lastStatus === 204 || lastStatus === 304) {
        return new BodyReader("none");
      }
      return bodyOf(head, false);
    }, () => {
      if (lastStatus >= 100 && lastStatus < 200) return;
      methods.shift();
      r.responsesDone++;
      r.firstRequest = false;
      r.idleSince = performance.now();
    });

    try {
      r.upstream = await connectInner();
    } catch (e) {
      complain(`cannot reach the http server: ${(e as Error).message}`);
      relays.delete(r);
      r.closed = true;
      await refuse(
        client,
        plainResponse(503, "Service Unavailable", "server busy", "retry-after: 2\r\n"),
      );
      return;
    }
    const upstream = r.upstream;

    const fromClient = (async () => {
      const buf = new Uint8Array(64 * 1024);
      while (!r.closed) {
        const n = await client.read(buf);
        if (n === null) {
          await upstream.closeWrite().catch(() => {});
          return;
        }
        const bytes = buf.subarray(0, n);
        r.lastClientByte = performance.now();
        const s = r.requests;
        if (s.phase === "head" && s.headBytes === 0 && r.headStartedAt < 0) {
          r.headStartedAt = r.lastClientByte;
        }
        try {
          s.feed(bytes);
        } catch (e) {
          if (e instanceof HeadTooLarge) {
            await refuse(
              client,
              plainResponse(431, "Request Header Fields Too Large", "request head too large"),
            );
            r.close();
            return;
          }
          s.opaque = true; // framing we cannot follow: idle timeouts still apply
        }
        if (s.phase === "body" || s.headBytes === 0) r.headStartedAt = -1;
        if (s.phase === "head" && s.headBytes > 0 && r.headStartedAt < 0) {
          r.headStartedAt = r.lastClientByte;
        }
        await writeAll(upstream, bytes);
      }
    })();
    const fromServer = (async () => {
      const buf = new Uint8Array(64 * 1024);
      while (!r.closed) {
        const n = await upstream.read(buf);
        if (n === null) return;
        const bytes = buf.subarray(0, n);
        try {
          responses.feed(bytes);
        } catch {
          responses.opaque = true;
        }
        // A client that stops reading its answer must not hold the connection forever.
        const stuck = setTimeout(() => r.close(), limits.sendTimeoutMs);
        try {
          await writeAll(client, bytes);
        } finally {
          clearTimeout(stuck);
        }
      }
    })();
    try {
      await Promise.race([
        fromServer,
        fromClient.then(() => fromServer), // a half-closed client still gets its answer
      ]);
    } catch {
      // Either side went away mid-way.
    } finally {
      fromClient.catch(() => {});
      fromServer.catch(() => {});
      r.close();
      relays.delete(r);
    }
  };

  let refusing = 0;
  const accepting = (async () => {
    while (!closing) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (closing || e instanceof Deno.errors.BadResource) return;
        complain(
          `accept failed: ${(e as Error).message}` +
            (isTooManyFiles(e) ? " (out of file descriptors; lower --max-connections)" : ""),
        );
        await sleep(isTooManyFiles(e) ? 100 : 10);
        continue;
      }
      if (relays.size >= limits.maxConnections) {
        // Each refusal holds its descriptor while the 503 goes out: a few at a time, and past
        // that closed at once, so that a storm of connections cannot exhaust them either.
        if (refusing >= MAX_REFUSING) {
          try {
            conn.close();
          } catch {
            // closed
          }
          continue;
        }
        refusing++;
        refuse(
          conn,
          plainResponse(
            503,
            "Service Unavailable",
            `server busy: ${relays.size} connections open`,
            "retry-after: 2\r\n",
          ),
        ).finally(() => refusing--);
        continue;
      }
      relay(conn).catch((e) => log(`connection error: ${(e as Error)?.message ?? e}`));
    }
  })();

  let finishedResolve!: () => void;
  const finished = new Promise<void>((r) => finishedResolve = r);

  const shutdown = async () => {
    if (closing) return await finished;
    closing = true;
    try {
      listener.close();
    } catch {
      // closed
    }
    await accepting;
    // Graceful, as Deno.serve's own: the requests under way finish and their answers go out
    // through their relays (idle connections are closed).
    const server = inner as Deno.HttpServer | null;
    if (server) {
      await server.shutdown().catch(() => {});
      await server.finished.catch(() => {});
    }
    // The last answers may still be on their way through their relays, which end when
    // Deno.serve closes its side; then whatever is left is closed.
    const until = performance.now() + 5000;
    while (relays.size > 0 && performance.now() < until) await sleep(20);
    for (const r of relays) r.close();
    relays.clear();
    clearInterval(sweep);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    finishedResolve();
  };

  return {
    addr: listener.addr as Deno.NetAddr,
    maxConnections: limits.maxConnections,
    get connections() {
      return relays.size;
    },
    finished,
    shutdown,
  };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}
