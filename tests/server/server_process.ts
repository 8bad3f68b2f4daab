/**
 * `src/server.ts` as a child process for the multi-host tests: started with the given flags,
 * its "listening" line awaited, its whole log (stdout and stderr) collected, stopped by a
 * signal.
 */
import { TASK_PERMISSIONS } from "../util/run_deno.ts";

const SERVER = new URL("../../src/server.ts", import.meta.url).pathname;

export interface ServerProcess {
  base: string;
  /** Everything it logged so far, stdout and stderr interleaved as read. */
  log(): string;
  /** Waits (at most `ms`) until the log matches. */
  waitForLog(pattern: RegExp, ms?: number): Promise<void>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
}

export async function startServer(
  args: string[],
  env: Record<string, string> = {},
  /** How long to wait for the "listening" line (default 120 s). */
  listenMs = 120_000,
): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...TASK_PERMISSIONS, SERVER, "--host", "127.0.0.1", "--port", "0", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const collect = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (t) => void (text += t) }),
    );
  const done = Promise.all([collect(child.stdout), collect(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const waitForLog = async (pattern: RegExp, ms = 120_000) => {
    const deadline = Date.now() + ms;
    while (!pattern.test(text)) {
      if (exited || Date.now() > deadline) {
        throw new Error(`no ${pattern} in the server's log:\n${text}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    await waitForLog(/listening on http:\/\/127\.0\.0\.1:\d+\//, listenMs);
  } catch (e) {
    if (!exited) child.kill("SIGKILL");
    await status;
    await done;
    throw e;
  }
  const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(text)![1]);
  return {
    base: `http://127.0.0.1:${port}`,
    log: () => text,
    waitForLog,
    async stop(signal: Deno.Signal = "SIGTERM") {
      if (!exited) child.kill(signal);
      const s = await status;
      await done;
      return s.code;
    },
  };
}

/** A JSON request; the body is parsed when the answer is JSON. */
export async function request(
  base: string,
  method: string,
  path: string,
  body?: BodyInit | Record<string, unknown>,
): Promise<{ status: number; json: Record<string, unknown>; text: string }> {
  const init: RequestInit = { method };
  if (body instanceof Uint8Array) init.body = body as Uint8Array<ArrayBuffer>;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "content-type": "application/json" };
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  const json = res.headers.get("content-type")?.startsWith("application/json")
    ? JSON.parse(text)
    : {};
  return { status: res.status, json, text };
}

/** One sample of a /metrics text ("name{labels} value"), or NaN when absent. */
export function metric(text: string, series: string): number {
  for (const line of text.split("\n")) {
    const at = line.lastIndexOf(" ");
    if (line.slice(0, at) === series) return Number(line.slice(at + 1));
  }
  return NaN;
}
