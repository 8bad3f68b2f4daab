/**
 * `--ls-allow-host` / WGSAM_LS_ALLOW_HOSTS (the hosts Label Studio task images may come from at
 * private addresses) and the address classification behind the refusals.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../src/server/config.ts";
import { isPublicAddress, parseAllowHosts } from "../../src/server/ls_image.ts";

Deno.test("ls-allow-host: flag and env, parsed into host and port", () => {
  const env = (n: string) => (n === "WGSAM_LS_ALLOW_HOSTS" ? "minio, 10.0.0.2:9000" : undefined);
  assert.equal(parseConfig([], () => undefined).lsAllowHosts, null);
  assert.equal(parseConfig([], env).lsAllowHosts, "minio, 10.0.0.2:9000");
  assert.equal(
    parseConfig(["--ls-allow-host", "localhost:8080"], env).lsAllowHosts,
    "localhost:8080",
  );
  assert.deepEqual(parseAllowHosts("minio, 10.0.0.2:9000,[::1]:8080,LS.Example:80"), [
    { hostname: "minio", port: "" },
    { hostname: "10.0.0.2", port: "9000" },
    { hostname: "[::1]", port: "8080" },
    { hostname: "ls.example", port: "80" },
  ]);
  assert.deepEqual(parseAllowHosts(""), []);
  for (const bad of ["http://x", "a/b", "user@host", "host:99999", "a b"]) {
    assert.throws(() => parseAllowHosts(bad), /--ls-allow-host: .* is not a host or host:port/);
  }
});

Deno.test("ls-allow-host: a bad entry stops serve with exit 2 before the model loads", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("../../src/server.ts", import.meta.url).pathname,
      "--ls-allow-host",
      "http://evil",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /--ls-allow-host: "http:\/\/evil"/);
});

Deno.test("isPublicAddress: loopback, private, link-local and embedded forms are not public", () => {
  const notPublic = [
    "127.0.0.1",
    "127.255.0.9",
    "0.0.0.0",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "[::1]",
    "::ffff:127.0.0.1",
    "::ffff:a9fe:a9fe", // 169.254.169.254, IPv4-mapped
    "64:ff9b::a00:1", // NAT64 of 10.0.0.1
    "2002:c0a8:101::1", // 6to4 of 192.168.1.1
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "ff02::1",
    "not an address",
  ];
  for (const a of notPublic) assert.equal(isPublicAddress(a), false, a);
  for (const a of ["8.8.8.8", "172.32.0.1", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"]) {
    assert.equal(isPublicAddress(a), true, a);
  }
});
