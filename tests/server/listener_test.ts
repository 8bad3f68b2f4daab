/**
 * Issue #21.3: connections must not kill or exhaust the server. The guarded listener
 * (src/server/listener.ts) closes connections that never finish their request head or sit idle
 * between requests, caps how many are open, never cuts a request that is being answered, and
 * `deno task serve` stays clear of running out of file descriptors (EMFILE): its cap fits the
 * open-file limit.
 */
import assert from "node:assert/strict";
import { serveGuarded } from "../../src/server/listener.ts";

const encoder = new TextEncoder();

async function openPartial(port: number, count: number): Promise<Deno.Conn[]> {
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < count; i++) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    await c.write(encoder.encode("GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never: "));
    conns.push(c);
  }
  return conns;
}

/** Reads until the peer closes; the bytes as text (null when the read failed). */
async function readToClose(conn: Deno.Conn): Promise<string | null> {
  const chunks: string[] = [];
  const buf = new Uint8Array(4096);
  try {
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(new TextDecoder().decode(buf.subarray(0, n)));
    }
  } catch {
    return null;
  } finally {
    try {
      conn.close();
    } catch {
      // closed
    }
  }
  return chunks.join("");
}

function handler(req: Request): Promise<Response> | Response {
  const url = new URL(req.url);
  if (url.pathname === "/slow") {
    return new Promise((r) => setTimeout(() => r(new Response("slow done")), 900));
  }
  if (url.pathname === "/big") return new Response(new Uint8Array(32 * 1024 * 1024));
  if (req.method === "POST") {
    return req.arrayBuffer().then((b) => new Response(`got ${b.byteLength}`));
  }
  return new Response(JSON.stringify({ ok: true }), {
    headers: { "content-type": "application/json" },
  });
}

Deno.test("listener: unfinished heads and idle keep-alives are closed; answers are never cut", async () => {
  const logs: string[] = [];
  const server = await serveGuarded({
    hostname: "127.0.0.1",
    port: 0,
    limits: { headerTimeoutMs: 400, idleTimeoutMs: 300, maxConnections: 1000 },
    log: (l) => logs.push(l),
  }, handler);
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    const t0 = performance.now();
    const partial = await openPartial(server.addr.port, 50);
    // The server answers meanwhile.
    const info = await fetch(`${base}/info`);
    assert.deepEqual(await info.json(), { ok: true });
    const closed = await Promise.all(partial.map(readToClose));
    const ms = performance.now() - t0;
    assert.ok(closed.every((text) => text === "" || text === null), "closed without an answer");
    assert.ok(ms < 5000, `${ms} ms to close 50 unfinished heads`);

    // A kept-alive connection that asks nothing more is closed after the idle timeout...
    const idle = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await idle.write(encoder.encode("GET /info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    const t1 = performance.now();
    const answered = await readToClose(idle);
    assert.match(answered ?? "", /^HTTP\/1\.1 200 OK[\s\S]*\{"ok":true\}$/);
    assert.ok(performance.now() - t1 < 3000);

    // ...but a request that takes longer than both timeouts is answered in full.
    const slow = await fetch(`${base}/slow`);
    assert.equal(await slow.text(), "slow done");
    // Bodies (sized and chunked) and HEAD go through, on one kept-alive connection.
    const sized = await fetch(`${base}/upload`, { method: "POST", body: new Uint8Array(300_000) });
    assert.equal(await sized.text(), "got 300000");
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array(1000));
        c.enqueue(new Uint8Array(5000));
        c.close();
      },
    });
    const chunked = await fetch(`${base}/upload`, { method: "POST", body: stream });
    assert.equal(await chunked.text(), "got 6000");
    const head = await fetch(`${base}/info`, { method: "HEAD" });
    assert.equal(head.status, 200);
    await head.body?.cancel();
    assert.equal((await fetch(`${base}/info`).then((r) => r.json())).ok, true);
    // Nothing is left open once the clients are done and the timeouts have passed.
    const t2 = performance.now();
    while (server.connections > 0 && performance.now() - t2 < 3000) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(server.connections, 0);
  } finally {
    await server.shutdown();
  }
  assert.deepEqual(logs, []);
});

Deno.test("listener: past --max-connections a 503 at once; served again when they close", async () => {
  const server = await serveGuarded({
    hostname: "127.0.0.1",
    port: 0,
    limits: { headerTimeoutMs: 600, idleTimeoutMs: 600, maxConnections: 5 },
    log: () => {},
  }, handler);
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    const partial = await openPartial(server.addr.port, 5);
    while (server.connections < 5) await new Promise((r) => setTimeout(r, 10));
    const refused = await fetch(`${base}/info`);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get("retry-after"), "2");
    assert.match((await refused.json()).error, /server busy: 5 connections open/);
    await Promise.all(partial.map(readToClose)); // closed by the header timeout
    const ok = await fetch(`${base}/info`);
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    await server.shutdown();
  }
});

Deno.test("listener: a client that stops reading its answer is closed", async () => {
  const server = await serveGuarded({
    hostname: "127.0.0.1",
    port: 0,
    limits: { sendTimeoutMs: 300 },
    log: () => {},
  }, handler);
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await c.write(encoder.encode("GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    // 32 MiB is more than the socket buffers hold: the relay's write waits, then gives up.
    const t0 = performance.now();
    while (server.connections === 0 && performance.now() - t0 < 2000) {
      await new Promise((r) => setTimeout(r, 10));
    }
    while (server.connections > 0 && performance.now() - t0 < 5000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(server.connections, 0, "the stalled reader is still connected");
    c.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test({
  name: "serve: 300 sockets that never finish their headers under ulimit -n 256 do not kill it",
  // A real `deno task serve` (sam-tiny on the software adapter) in a shell with few descriptors.
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const server = new URL("../../src/server.ts", import.meta.url).pathname;
    const perms = "--allow-read --allow-write --allow-net --allow-env --allow-ffi";
    const child = new Deno.Command("bash", {
      args: [
        "-c",
        `ulimit -n 256 && exec "${Deno.execPath()}" run ${perms} "${server}" --port 0 ` +
        "--model sam-tiny --max-connections 1000 --header-timeout-s 2",
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderrText = new Response(child.stderr).text();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let port = 0;
    let out = "";
    try {
      while (!port) {
        const { value, done } = await lines.read();
        if (done) throw new Error(`server exited before listening:\n${out}\n${await stderrText}`);
        out += value;
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
        if (m) port = Number(m[1]);
      }
      const conns: Deno.Conn[] = [];
      for (let i = 0; i < 300; i++) {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        c.write(encoder.encode("GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")).catch(() => {});
        conns.push(c);
      }
      // The cap was lowered to what 256 descriptors can hold: the rest had a 503 at once, and past
      // the header timeout the server has dropped the others and still answers.
      const answers = await Promise.all(conns.map(readToClose));
      for (const a of answers) assert.ok(!a || a.startsWith("HTTP/1.1 503"), a ?? "");
      assert.ok(answers.some((a) => a?.startsWith("HTTP/1.1 503")), "some were refused");
      let status = 0;
      for (let tries = 0; tries < 50 && status !== 200; tries++) {
        status = await fetch(`http://127.0.0.1:${port}/api/info`)
          .then(async (r) => {
            await r.body?.cancel();
            return r.status;
          })
          .catch(() => 0);
        if (status !== 200) await new Promise((r) => setTimeout(r, 200));
      }
      if (status !== 200) {
        try {
          child.kill("SIGKILL");
        } catch {
          // exited
        }
        console.log("exit", await child.status);
        throw new Error(`no answer after the storm:\n${(await stderrText).slice(-3000)}`);
      }
      child.kill("SIGTERM");
      const { code } = await child.status;
      const stderr = await stderrText;
      assert.doesNotMatch(stderr, /Uncaught|panicked/);
      // The cap kept it clear of EMFILE altogether (where Deno itself may panic).
      assert.doesNotMatch(stderr, /Too many open files/);
      assert.match(
        stderr,
        /at most \d+ connections \(not 1000\): only \d+ more files can be opened/,
      );
      assert.equal(code, 0, stderr);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited
      }
      await lines.cancel().catch(() => {});
      await child.status;
    }
  },
});
