/** Runs one of the project's scripts in a child Deno, as a user's `deno task` would. */

/** The permissions of deno.json's tasks (imagescript's codecs need --allow-ffi). */
export const TASK_PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-ffi",
];

export interface DenoRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `deno run <permissions> <script> <args>`, its exit code and decoded output. */
export async function runDeno(
  script: string | URL,
  args: readonly string[],
  opts: { permissions?: readonly string[]; env?: Record<string, string> } = {},
): Promise<DenoRun> {
  const path = script instanceof URL ? script.pathname : script;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...(opts.permissions ?? TASK_PERMISSIONS), path, ...args],
    stdout: "piped",
    stderr: "piped",
    env: opts.env,
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}
