/**
 * Runs one peer measurement in a child Deno process, so that a case which takes too long
 * (onnxruntime-web's WebGPU provider on a software adapter) can be stopped at a time limit,
 * and a crash inside ONNX Runtime (wasm out of memory, an abort) cannot take the report down.
 * The child runs on the same machine right after or before ours, never at the same time.
 *
 *   deno run -A bench/peer/peer_cli.ts '<PeerSpec as JSON>'
 *
 * prints each case's PeerResult as JSON on a line starting with RESULT_PREFIX.
 */
import { type PeerResult, type PeerSpec, runPeer } from "./ort_peer.ts";

export const RESULT_PREFIX = "PEER_RESULT ";

/**
 * Spawns the child for `spec`, waits at most `timeoutMs`, and returns its results (one per
 * case); a timeout or a failed child makes every case "unavailable" with the reason. Results
 * of cases that finished before a timeout are kept (the child prints each as it ends).
 */
export async function runPeerInChild(spec: PeerSpec, timeoutMs: number): Promise<PeerResult[]> {
  const unavailable = (reason: string) =>
    spec.cases.map((c): PeerResult => ({
      case: c.name,
      backend: spec.backend,
      graph: spec.graph.id,
      status: "unavailable",
      reason,
    }));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./peer_cli.ts", import.meta.url).pathname, JSON.stringify(spec)],
    stdout: "piped",
    stderr: "piped",
    env: { WGSAM_QUIET: "1" },
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const stdout = new TextDecoder().decode(out.stdout);
  const done = new Map<string, PeerResult>();
  for (const line of stdout.split("\n")) {
    if (!line.startsWith(RESULT_PREFIX)) continue;
    const r = JSON.parse(line.slice(RESULT_PREFIX.length)) as PeerResult;
    done.set(r.case, r);
  }
  if (timedOut) {
    const reason = `did not finish within the ${Math.round(timeoutMs / 1000)} s limit`;
    return unavailable(reason).map((u) => done.get(u.case) ?? u);
  }
  if (done.size < spec.cases.length) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").filter((l) =>
      l.trim() && !l.includes("cpuid_info")
    );
    const reason = `child exited with code ${out.code}: ${
      (err.at(-1) ?? "no output").slice(0, 300)
    }`;
    return unavailable(reason).map((u) => done.get(u.case) ?? u);
  }
  return spec.cases.map((c) => done.get(c.name)!);
}

if (import.meta.main) {
  const spec = JSON.parse(Deno.args[0]) as PeerSpec;
  // One case at a time, each printed as it ends, so a time limit keeps the finished ones.
  await runPeer(spec, (r) => console.log(RESULT_PREFIX + JSON.stringify(r)));
  // ORT's worker threads would keep the process alive.
  Deno.exit(0);
}
