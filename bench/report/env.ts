/**
 * Where and when a report ran (adapter, Deno, CPUs, load, git state, the peer's version) and
 * the progress log on stderr.
 */

export interface Env {
  adapter: string;
  software: boolean;
  hasTimestamps: boolean;
  date: string;
  deno: typeof Deno.version;
  cpus: number;
  loadavgStart: number[];
  loadavgEnd?: number[];
  os: string;
  /** The peer's package, from deno.json's import map (e.g. "npm:onnxruntime-web@1.23.2"). */
  peer: string;
  /** The checkout measured: HEAD, and our source files that differ from it (measured as they were). */
  git: { head: string; uncommitted: string[] } | null;
}

export async function peerPackage(): Promise<string> {
  try {
    const config = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
    return String(config.imports?.["onnxruntime-web"] ?? "onnxruntime-web");
  } catch {
    return "onnxruntime-web";
  }
}

/** HEAD and the uncommitted files under src/, or null outside a git checkout. */
export async function gitState(): Promise<Env["git"]> {
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", {
      args,
      cwd: new URL("../..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) throw new Error(`git ${args[0]} failed`);
    return new TextDecoder().decode(out.stdout);
  };
  try {
    const head = (await git("rev-parse", "--short", "HEAD")).trim();
    const uncommitted = (await git("status", "--porcelain", "--", "src"))
      .split("\n").filter(Boolean).map((l) => l.slice(3));
    return { head, uncommitted };
  } catch {
    return null;
  }
}

export function loadavg(): number[] {
  try {
    return Deno.loadavg().map((x) => Math.round(x * 100) / 100);
  } catch {
    return [];
  }
}

export function log(msg: string): void {
  console.error(`[report ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}
