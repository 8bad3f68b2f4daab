/**
 * What every wgsam command line shares: one argument parser (Node's `util.parseArgs`, which
 * Deno provides as `node:util`: maintained with the runtime, strict about unknown flags and
 * missing values, and needing no package from JSR, which this project cannot reach), one
 * wording for argument mistakes, and one exit convention: 0 done, 1 a runtime failure with a
 * one-line message, 2 a bad argument (before any model is loaded wherever it can be known).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { parsePrecision, setDefaultPrecision } from "../precision.ts";

/** An argument mistake: the command prints it with a pointer to --help and exits 2. */
export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Flags shared by every command that runs the GPU, spread into each one's parseFlags options
 * (segment, amg, detect-segment, tune, worker): the one place to add a device choice such as
 * `--gpu`. `--precision f32|f16` (src/precision.ts) is checked by parseFlags and becomes the
 * process's default precision for SamModel.load, over $WGSAM_PRECISION.
 */
export const GPU_FLAGS = { precision: { type: "string" } } as const;

/** True when the user asked for help (`--help` or `-h` anywhere before a `--`). */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === "--") return false;
    if (a === "--help" || a === "-h") return true;
  }
  return false;
}

/**
 * Parses `argv` against `options` (`--flag value` and `--flag=value`; positionals allowed).
 * Unknown flags, missing values, values given to a switch and a non-repeatable flag given
 * twice throw a UsageError naming the flag.
 */
export function parseFlags<const O extends Options>(argv: readonly string[], options: O) {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options,
      allowPositionals: true,
      strict: true,
      tokens: true,
    });
  } catch (e) {
    throw new UsageError(parseErrorMessage(e as Error & { code?: string }));
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== "option" || options[token.name]?.multiple) continue;
    if (seen.has(token.name)) throw new UsageError(`--${token.name} given twice`);
    seen.add(token.name);
  }
  const precision = (parsed.values as Record<string, unknown>).precision;
  if ("precision" in options && typeof precision === "string") {
    try {
      setDefaultPrecision(parsePrecision(precision, "--precision"));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  return { values: parsed.values, positionals: parsed.positionals };
}

/** parseArgs' messages, in the words of every other wgsam argument error. */
function parseErrorMessage(e: Error & { code?: string }): string {
  const flag = /'(-[^' ]*)/.exec(e.message)?.[1] ?? "";
  if (e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown option ${flag}`;
  if (e.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    if (/does not take an argument/.test(e.message)) return `${flag} takes no value`;
    if (/ambiguous/.test(e.message)) {
      return `${flag} needs a value (for a value starting with '-', write ${flag}=<value>)`;
    }
    return `${flag} needs a value`;
  }
  return e.message;
}

/** A finite number from a flag's text, within [min, max]; integers only with `integer`. */
export function numberFlag(
  flag: string,
  text: string,
  opts: { min?: number; max?: number; integer?: boolean } = {},
): number {
  const v = Number(text);
  const ok = text.trim() !== "" && Number.isFinite(v) && (!opts.integer || Number.isInteger(v));
  if (!ok) {
    throw new UsageError(
      `--${flag} must be ${opts.integer ? "an integer" : "a number"}, got '${text}'`,
    );
  }
  if (opts.min !== undefined && v < opts.min) {
    throw new UsageError(`--${flag} must be at least ${opts.min}, got ${v}`);
  }
  if (opts.max !== undefined && v > opts.max) {
    throw new UsageError(`--${flag} must be at most ${opts.max}, got ${v}`);
  }
  return v;
}

/**
 * Checks that an input file exists and is a file, so that a typo is an argument mistake
 * (exit 2, one line) rather than a raw OS error after the model has loaded.
 */
export async function requireInputFile(path: string, what: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`${what}: no such file: ${path}`);
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new UsageError(`${what}: not allowed to read ${path}`);
    }
    throw e;
  }
  if (!info.isFile) throw new UsageError(`${what}: ${path} is not a file`);
}

function debugEnabled(): boolean {
  try {
    return Deno.env.get("WGSAM_DEBUG") === "1";
  } catch {
    return false; // no --allow-env
  }
}

/**
 * Runs a command's main and exits with its status: a UsageError prints
 * `<name>: error: <message>` and a pointer to --help (status 2); any other error prints
 * `<name>: error: <message>` (status 1; $WGSAM_DEBUG=1 adds the stack).
 */
export async function runCli(name: string, main: () => Promise<number | void>): Promise<never> {
  let code: number;
  try {
    code = (await main()) ?? 0;
  } catch (e) {
    const err = e as Error;
    if (e instanceof UsageError) {
      console.error(`${name}: error: ${err.message}\nRun 'deno task ${name} --help' for usage.`);
      code = 2;
    } else {
      console.error(`${name}: error: ${debugEnabled() ? err.stack : err.message}`);
      code = 1;
    }
  }
  Deno.exit(code);
}
