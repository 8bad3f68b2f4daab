/**
 * The image of a Label Studio task, fetched the way label-studio-sdk's `get_local_path`
 * resolves task URLs (label_studio_tools/core/utils/io.py), since that is where ML backends
 * most often fail, every failure here says what to fix:
 *
 * - `data:` URLs are decoded in place.
 * - Label Studio paths (`/data/upload/...`, `upload/...`, `/data/local-files/?d=...`,
 *   `/storage-data/...`, `/tasks/<id>/presign/?fileuri=...`) are fetched from LABEL_STUDIO_URL
 *   with LABEL_STUDIO_API_KEY; no other Label Studio path is read (the key opens its whole API).
 * - Cloud storage URIs (`s3://`, `gs://`, `azure-blob://`) go through Label Studio's presign
 *   endpoint `/tasks/<task id>/presign/?fileuri=...`.
 * - Other http(s) URLs are fetched as they are; the key goes only to Label Studio's own host.
 *
 * Any caller of /ls/predict names these URLs, so this is a server-side request on its behalf:
 * a host that is neither LABEL_STUDIO_URL's nor on the operator's allow-list
 * (`--ls-allow-host`) must resolve to public addresses only (no loopback, private, link-local
 * or cloud metadata address; http is then fetched from the address checked, https by name,
 * which its certificate binds), every redirect hop is checked the same way, and its failures
 * are a generic 502 that does not tell the remote status apart (no port scanning through us).
 *
 * Where LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are both unset, the routes pass what Label
 * Studio's setup call said (its hostname and the project creator's token), never a mix.
 *
 * The key is sent as `Authorization: Token <key>`, or `Bearer <key>` for a JWT (Label Studio's
 * personal access tokens), as the SDK does.
 */
import { HttpError } from "./errors.ts";

export interface LabelStudioConnection {
  /** LABEL_STUDIO_URL (or LABEL_STUDIO_HOST), e.g. http://localhost:8080; "" when unset. */
  url: string;
  /** LABEL_STUDIO_API_KEY (or LABEL_STUDIO_ACCESS_TOKEN); "" when unset. */
  apiKey: string;
  /** Where the pair comes from: the operator's environment, or an (unauthenticated) setup call. */
  source?: "env" | "setup";
}

/** The connection from the environment (empty fields where unset or not readable). */
export function labelStudioFromEnv(): LabelStudioConnection {
  const get = (name: string) => {
    try {
      return Deno.env.get(name) ?? "";
    } catch {
      return ""; // no --allow-env
    }
  };
  return {
    url: (get("LABEL_STUDIO_URL") || get("LABEL_STUDIO_HOST")).trim(),
    apiKey: (get("LABEL_STUDIO_API_KEY") || get("LABEL_STUDIO_ACCESS_TOKEN")).trim(),
    source: "env",
  };
}

/** Longest a task image may take to arrive, redirects included (the request limit may be less). */
export const FETCH_TIMEOUT_MS = 60_000;
/** Redirect hops followed (Label Studio's presign answers with one). */
const MAX_REDIRECTS = 5;

function isJwt(token: string): boolean {
  const parts = token.split(".");
  if (parts.length !== 3) return false;
  try {
    const header = JSON.parse(atob(parts[0].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof header === "object" && header !== null && Object.hasOwn(header, "alg");
  } catch {
    return false;
  }
}

function decodeDataUrl(url: string, maxBytes: number): Uint8Array {
  const comma = url.indexOf(",");
  if (comma < 0) throw new HttpError(400, "task image: malformed data: URL (no comma)");
  const meta = url.slice(5, comma);
  const payload = url.slice(comma + 1);
  let bytes: Uint8Array;
  try {
    bytes = /;base64$/i.test(meta)
      ? Uint8Array.fromBase64(decodeURIComponent(payload).replace(/\s+/g, ""))
      : new TextEncoder().encode(decodeURIComponent(payload));
  } catch {
    throw new HttpError(400, "task image: the data: URL's payload is not valid base64");
  }
  if (bytes.length > maxBytes) {
    throw new HttpError(413, `task image: data: URL over the limit of ${maxBytes} bytes`);
  }
  return bytes;
}

/** One `--ls-allow-host` entry: a host name or address, with a port or for every port. */
export interface AllowedHost {
  hostname: string;
  /** "" for every port. */
  port: string;
}

/**
 * The operator's allow-list, comma separated (`host`, `host:port`, `[v6]:port`); throws with
 * a message naming the bad entry.
 */
export function parseAllowHosts(text: string): AllowedHost[] {
  const out: AllowedHost[] = [];
  for (const raw of text.split(",")) {
    const entry = raw.trim();
    if (!entry) continue;
    let url: URL;
    try {
      if (/[/?#@\s]/.test(entry)) throw new Error();
      url = new URL(`http://${entry}`);
    } catch {
      throw new Error(`--ls-allow-host: "${entry.slice(0, 100)}" is not a host or host:port`);
    }
    // URL drops ":80" for http; an explicit port is kept as given.
    const port = /:(\d+)$/.exec(entry)?.[1] ?? "";
    out.push({ hostname: url.hostname, port: port ? String(Number(port)) : "" });
  }
  return out;
}

function effectivePort(url: URL): string {
  return url.port || (url.protocol === "https:" ? "443" : "80");
}

function isAllowed(url: URL, allow: readonly AllowedHost[]): boolean {
  return allow.some((a) =>
    a.hostname === url.hostname && (a.port === "" || a.port === effectivePort(url))
  );
}

function ipv4Octets(text: string): number[] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  const o = m.slice(1).map(Number);
  return o.every((v) => v <= 255) ? o : null;
}

function publicIpv4([a, b, c]: number[]): boolean {
  return !(
    a === 0 || a === 10 || a === 127 || a >= 224 || // this network, private, loopback, multicast+
    (a === 100 && b >= 64 && b <= 127) || // carrier-grade NAT
    (a === 169 && b === 254) || // link-local, cloud metadata
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    (a === 192 && b === 0 && c === 0) || // IETF protocol assignments
    (a === 198 && (b === 18 || b === 19)) // benchmarking
  );
}

/** The 8 16-bit groups of an IPv6 address (no brackets), or null. */
function ipv6Groups(text: string): number[] | null {
  let s = text.toLowerCase();
  // A dotted IPv4 tail (::ffff:1.2.3.4) becomes its two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const o = ipv4Octets(v4[1]);
    if (!o) return null;
    s = s.slice(0, -v4[1].length) + `${((o[0] << 8) | o[1]).toString(16)}:` +
      ((o[2] << 8) | o[3]).toString(16);
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const parse = (h: string) => h === "" ? [] : h.split(":").map((g) => parseInt(g, 16));
  const left = parse(halves[0]);
  const right = halves.length === 2 ? parse(halves[1]) : [];
  const fill = 8 - left.length - right.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return null;
  const groups = [...left, ...Array(halves.length === 2 ? fill : 0).fill(0), ...right];
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : null;
}

/**
 * True for a globally routable address; false for loopback, private (RFC 1918, ULA), link-local
 * (169.254/16 with the cloud metadata service, fe80::/10), CGNAT, multicast, unspecified and
 * reserved ranges, and for IPv6 forms that embed one of those IPv4 addresses.
 */
export function isPublicAddress(address: string): boolean {
  const text = address.replace(/^\[|\]$/g, "");
  const v4 = ipv4Octets(text);
  if (v4) return publicIpv4(v4);
  const g = ipv6Groups(text);
  if (!g) return false; // not an address: never trusted
  const embedded = (hi: number, lo: number) => [hi >> 8, hi & 255, lo >> 8, lo & 255];
  if (g.slice(0, 5).every((x) => x === 0) && (g[5] === 0 || g[5] === 0xffff)) {
    // ::/96 (unspecified, loopback, IPv4-compatible) and ::ffff:0:0/96 (IPv4-mapped)
    if (g[5] === 0 && g[6] === 0) return false;
    return publicIpv4(embedded(g[6], g[7]));
  }
  if (g[0] === 0x64 && g[1] === 0xff9b) return publicIpv4(embedded(g[6], g[7])); // NAT64
  if (g[0] === 0x2002) return publicIpv4(embedded(g[1], g[2])); // 6to4
  if ((g[0] & 0xfe00) === 0xfc00) return false; // unique local
  if ((g[0] & 0xffc0) === 0xfe80 || (g[0] & 0xffc0) === 0xfec0) return false; // link/site-local
  if ((g[0] & 0xff00) === 0xff00) return false; // multicast
  if (g[0] === 0x2001 && g[1] === 0x0db8) return false; // documentation
  return true;
}

/** The addresses a host name resolves to (A and AAAA); [] when it does not resolve. */
export type Resolver = (hostname: string) => Promise<string[]>;

const dnsResolver: Resolver = async (hostname) => {
  const out: string[] = [];
  for (const type of ["A", "AAAA"] as const) {
    try {
      out.push(...await Deno.resolveDns(hostname, type));
    } catch {
      // NXDOMAIN, no such record, or no permission: judged on what did resolve.
    }
  }
  return out;
};

/** What may be fetched, and with which key. */
export interface FetchPolicy {
  /** The operator's allow-list (`--ls-allow-host`), trusted like LABEL_STUDIO_URL's host. */
  allowHosts: readonly AllowedHost[];
  /** Name resolution (tests pass a stand-in); Deno.resolveDns by default. */
  resolve?: Resolver;
  /** Which addresses count as public (tests widen it); isPublicAddress by default. */
  isPublic?: (address: string) => boolean;
}

/** Label Studio paths that hold task files (what label-studio-sdk's get_local_path reads). */
const LABEL_STUDIO_FILE_PATHS = [
  /^\/data\/upload\//,
  /^\/data\/local-files\/?$/,
  /^\/storage-data\//,
  /^\/tasks\/\d+\/presign\/?$/,
];

const READ_PATHS_TEXT = "/data/upload/..., upload/..., /data/local-files/?d=..., " +
  "/storage-data/..., /tasks/<id>/presign/?fileuri=..., s3://, gs://, azure-blob://";

function checkLabelStudioPath(url: URL, value: string): void {
  const path = url.pathname;
  // An encoded slash or backslash could climb out of the prefix once Label Studio decodes it.
  if (!LABEL_STUDIO_FILE_PATHS.some((re) => re.test(path)) || /%2f|%5c|\\/i.test(path)) {
    throw new HttpError(
      400,
      `task image "${value.slice(0, 200)}": wgsam reads only Label Studio's file paths ` +
        `(${READ_PATHS_TEXT}) with the API key, not other Label Studio routes`,
    );
  }
}

/** The absolute URL to fetch for a task's image value, and whether it is Label Studio's. */
export function resolveTaskImageUrl(
  value: string,
  ls: LabelStudioConnection,
  taskId?: unknown,
): { url: string; labelStudio: boolean } {
  let path = value.trim();
  if (path.startsWith("upload/") || path.startsWith("/upload/")) {
    path = "/data" + (path.startsWith("/") ? "" : "/") + path;
  }
  const cloud = /^(s3|gs|azure-blob):\/\//i.test(path);
  const relative = path.startsWith("/") && !path.startsWith("//");
  if (cloud || relative) {
    if (!ls.url) {
      throw new HttpError(
        400,
        ls.source === "env"
          ? `task image "${value.slice(0, 200)}" is stored in Label Studio and ` +
            `LABEL_STUDIO_API_KEY is set without LABEL_STUDIO_URL: set both (wgsam never ` +
            `sends that key to an address from Label Studio's setup call)`
          : `task image "${value.slice(0, 200)}" is stored in Label Studio: start wgsam with ` +
            `LABEL_STUDIO_URL=http://<label-studio-host>:8080 (as this server reaches it) and ` +
            `LABEL_STUDIO_API_KEY=<your access token from Account & Settings>, or connect the ` +
            `model again in Label Studio (its setup call tells wgsam both)`,
      );
    }
    if (!/^https?:\/\//i.test(ls.url)) {
      throw new HttpError(
        400,
        `LABEL_STUDIO_URL "${ls.url.slice(0, 200)}" must start with http:// or https://`,
      );
    }
    if (!ls.apiKey) {
      throw new HttpError(
        400,
        `task image "${value.slice(0, 200)}" is stored in Label Studio: set ` +
          `LABEL_STUDIO_API_KEY to an access token (Label Studio: Account & Settings)`,
      );
    }
    const base = ls.url.replace(/\/+$/, "");
    if (cloud) {
      if (taskId === undefined || taskId === null) {
        throw new HttpError(
          400,
          `task image "${value.slice(0, 200)}": a cloud URI needs the task id`,
        );
      }
      if (!/^\d+$/.test(String(taskId))) {
        throw new HttpError(400, `task id "${String(taskId).slice(0, 40)}" is not a number`);
      }
      return {
        url: `${base}/tasks/${String(taskId)}/presign/?fileuri=${encodeURIComponent(path)}`,
        labelStudio: true,
      };
    }
    let url: URL;
    try {
      url = new URL(base + path);
    } catch {
      throw new HttpError(400, `task image: malformed path "${value.slice(0, 200)}"`);
    }
    checkLabelStudioPath(url, value);
    return { url: url.href, labelStudio: true };
  }
  if (/^https?:\/\//i.test(path)) {
    let url: URL;
    let sameHost = false;
    try {
      url = new URL(path);
      sameHost = !!ls.url && url.host === new URL(ls.url).host;
    } catch {
      throw new HttpError(400, `task image: malformed URL "${value.slice(0, 200)}"`);
    }
    // The key goes with it: only to the file paths, as for a relative path.
    if (sameHost) checkLabelStudioPath(url, value);
    return { url: url.href, labelStudio: sameHost };
  }
  throw new HttpError(
    400,
    `task image "${value.slice(0, 200)}": wgsam reads data: URLs, http(s) URLs and Label ` +
      `Studio paths (${READ_PATHS_TEXT})`,
  );
}

/**
 * Refuses a URL whose host is not trusted (LABEL_STUDIO_URL's from the environment, or the
 * allow-list) and is, or resolves to, a non-public address. A name is judged by every address
 * it resolves to, so one private record is enough to refuse it. Returns the address an http
 * name must be fetched from (the one checked, so a second lookup cannot rebind it to a private
 * one); https is fetched by name, its certificate binding the connection to that name.
 */
async function checkHost(url: URL, trusted: boolean, policy: FetchPolicy): Promise<string | null> {
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new HttpError(400, `task image: only http(s) is fetched, not ${url.protocol}`);
  }
  if (trusted) return null;
  const isPublic = policy.isPublic ?? isPublicAddress;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const refuse = () =>
    new HttpError(
      400,
      `task image host ${url.host} is a loopback, private or link-local address: wgsam ` +
        `fetches such hosts only for LABEL_STUDIO_URL's host and --ls-allow-host ` +
        `(WGSAM_LS_ALLOW_HOSTS)`,
    );
  const literal = ipv4Octets(host) !== null || host.includes(":");
  if (literal) {
    if (!isPublic(host)) throw refuse();
    return null;
  }
  if (host === "localhost" || host.endsWith(".localhost") || !host.includes(".")) throw refuse();
  const addresses = await (policy.resolve ?? dnsResolver)(host);
  if (addresses.length === 0) {
    throw new HttpError(502, `could not fetch the task image from ${url.host}`);
  }
  if (!addresses.every(isPublic)) throw refuse();
  return url.protocol === "http:" ? addresses[0] : null;
}

/** The bytes of a task's image; HttpErrors that say what went wrong and what to fix. */
export async function fetchTaskImage(
  value: unknown,
  ls: LabelStudioConnection,
  opts: { maxBytes: number; taskId?: unknown; timeoutMs?: number; policy?: FetchPolicy },
): Promise<Uint8Array> {
  if (typeof value !== "string" || value.trim() === "") {
    throw new HttpError(400, "the task's image field is not a URL string");
  }
  if (/^data:/i.test(value)) return decodeDataUrl(value.trim(), opts.maxBytes);
  const policy: FetchPolicy = opts.policy ?? { allowHosts: [] };
  const { url: first, labelStudio } = resolveTaskImageUrl(value, ls, opts.taskId);
  let lsUrl: URL | null = null;
  try {
    lsUrl = ls.url ? new URL(ls.url) : null;
  } catch {
    lsUrl = null;
  }
  const signal = AbortSignal.timeout(
    Math.min(opts.timeoutMs ?? FETCH_TIMEOUT_MS, FETCH_TIMEOUT_MS),
  );
  let url = new URL(first);
  // The key goes only to Label Studio's host, and only while the chain has not left it: a
  // foreign host redirecting back to Label Studio gets no key.
  let keyed = labelStudio;
  let res: Response;
  let client: Deno.HttpClient | undefined;
  try {
    for (let hop = 0;; hop++) {
      const onLabelStudio = lsUrl !== null && url.host === lsUrl.host;
      keyed = keyed && onLabelStudio;
      // Operator-named hosts: LABEL_STUDIO_URL's (from the environment) and the allow-list.
      // Their failures are told in detail; others get one generic message (no port scanning).
      const trusted = (onLabelStudio && ls.source === "env") || isAllowed(url, policy.allowHosts);
      const pinned = await checkHost(url, trusted, policy);
      const where = onLabelStudio ? `Label Studio at ${ls.url}` : url.host;
      const headers: Record<string, string> = {};
      if (keyed && ls.apiKey) {
        headers.authorization = `${isJwt(ls.apiKey) ? "Bearer" : "Token"} ${ls.apiKey}`;
      }
      client?.close();
      // The connection goes to the checked address; the URL (and Host header) keep the name.
      client = pinned === null ? undefined : Deno.createHttpClient({
        proxy: { transport: "tcp", hostname: pinned, port: Number(effectivePort(url)) },
      });
      try {
        res = await fetch(url, { headers, signal, redirect: "manual", client });
      } catch (e) {
        throw new HttpError(
          502,
          trusted
            ? `could not fetch the task image ${url.href.slice(0, 300)} from ${where}: ` +
              `${(e as Error).message}` +
              (onLabelStudio
                ? " (is LABEL_STUDIO_URL the address this server reaches Label Studio at?)"
                : "")
            : `could not fetch the task image from ${url.host}`,
        );
      }
      const location = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && location !== null) {
        await res.body?.cancel();
        if (hop >= MAX_REDIRECTS) {
          throw new HttpError(
            502,
            `task image: more than ${MAX_REDIRECTS} redirects from ${where}`,
          );
        }
        try {
          url = new URL(location, url);
        } catch {
          throw new HttpError(502, `task image: ${where} redirected to a malformed URL`);
        }
        continue;
      }
      if (!res.ok) {
        await res.body?.cancel();
        if (!trusted) throw new HttpError(502, `could not fetch the task image from ${url.host}`);
        const hint = res.status === 401 || res.status === 403
          ? onLabelStudio
            ? ": check LABEL_STUDIO_API_KEY (a valid access token of a user of that project)"
            : ": that host needs credentials wgsam does not send"
          : res.status === 404
          ? ": no such file there"
          : "";
        throw new HttpError(
          502,
          `${where} answered ${res.status} for the task image ${url.href.slice(0, 300)}${hint}`,
        );
      }
      break;
    }
    const declared = Number(res.headers.get("content-length") ?? NaN);
    if (declared > opts.maxBytes) {
      await res.body?.cancel();
      throw new HttpError(
        413,
        `task image over the limit of ${opts.maxBytes} bytes (--max-upload-mb)`,
      );
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    if (res.body) {
      try {
        for await (const chunk of res.body) {
          total += chunk.byteLength;
          if (total > opts.maxBytes) {
            throw new HttpError(
              413,
              `task image over the limit of ${opts.maxBytes} bytes (--max-upload-mb)`,
            );
          }
          chunks.push(chunk);
        }
      } catch (e) {
        if (e instanceof HttpError) throw e;
        throw new HttpError(502, `the task image from ${url.host} did not arrive in time or whole`);
      }
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  } finally {
    client?.close();
  }
}
