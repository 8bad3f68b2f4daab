/**
 * Gives a headless process a private XDG_RUNTIME_DIR before WebGPU lists adapters.
 *
 * Mesa's Vulkan device-select layer asks the Wayland client library for a display while the
 * adapters are listed; without XDG_RUNTIME_DIR that library prints "error: XDG_RUNTIME_DIR is
 * invalid or not set in the environment." (twice) on every GPU command. It looks fatal and is
 * not: there is no display to find. A process that has no runtime dir gets a fresh private one
 * (mkdtemp: mode 0700, so no other user can plant a socket in it), removed when it exits. A set
 * variable is left alone, and so is a process not allowed to read the environment or write to
 * the temp folder (it sees the message, which README explains).
 */

let done = false;

function granted(desc: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(desc).state === "granted";
  } catch {
    return false;
  }
}

/** Sets XDG_RUNTIME_DIR to a private temporary folder where it is unset (Linux and BSDs). */
export function ensureRuntimeDir(): void {
  if (done) return;
  done = true;
  if (typeof Deno === "undefined" || Deno.build.os === "windows" || Deno.build.os === "darwin") {
    return;
  }
  if (!granted({ name: "env", variable: "XDG_RUNTIME_DIR" })) return;
  const current = Deno.env.get("XDG_RUNTIME_DIR");
  if (current && current.startsWith("/")) return;
  const tmp = granted({ name: "env", variable: "TMPDIR" }) ? Deno.env.get("TMPDIR") : undefined;
  if (!granted({ name: "write", path: tmp || "/tmp" })) return;
  let dir: string;
  try {
    dir = Deno.makeTempDirSync({ prefix: "wgsam-runtime-" });
  } catch {
    return;
  }
  Deno.env.set("XDG_RUNTIME_DIR", dir);
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // Already gone, or the process is exiting without permission: nothing to do.
    }
  });
}
