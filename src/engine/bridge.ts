/**
 * The one module that owns the Python process.
 *
 * pythonia spawns its interpreter when it is first required, reading PYTHON_BIN and the thread
 * variables from process.env at that moment; so the environment is set first and pythonia is
 * required lazily here, never imported at the top of any module. Every engine function takes a
 * JSON string and returns a JSON string (see python/micanon/api.py), which is parsed with a zod
 * schema: only paths and small JSON cross, never arrays or Python object proxies.
 */
import { createRequire } from 'node:module';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { z } from 'zod';
import { MicanonError } from '../errors.js';
import { log } from '../log.js';
import { engineInterpreter, interpreterProblem, pythonSource } from '../paths.js';
import { handshake } from './contract.js';
import { replySchema, type EngineErrorReply } from './schemas.js';

const require = createRequire(import.meta.url);

interface PythoniaModule {
  python: ((module: string) => Promise<Record<string, (...args: unknown[]) => Promise<unknown>>>) & {
    exit: () => void;
  };
  com: { proc: ChildProcess | null };
}

export interface EngineOptions {
  /** Threads for ITK/ANTs and the BLAS/OpenMP pools; set before Python starts. */
  threads: number;
  /** Interpreter to run; default: the project's venv. */
  python?: string;
  /**
   * The run's work folder. Python's temporary files and matplotlib's cache (ANTsPy imports
   * matplotlib, which needs a writable config folder) go there, so a read-only container with
   * no writable /tmp works when -w points at a mounted folder.
   */
  scratchDir?: string;
}

/** What a Python-side failure becomes on the TS side: one line for users, the traceback for debug. */
export class EngineCallError extends MicanonError {
  readonly kind: EngineErrorReply['kind'];
  readonly pythonType: string;

  constructor(fn: string, reply: EngineErrorReply) {
    const code =
      reply.kind === 'input_missing'
        ? 'INPUT_MISSING'
        : reply.kind === 'bad_input'
          ? 'BAD_DATA'
          : reply.kind === 'cannot_write'
            ? 'CANNOT_CREATE_OUTPUT'
            : 'ENGINE_FAILED';
    super(code, reply.message, { detail: `engine.${fn}: ${reply.traceback}` });
    this.kind = reply.kind;
    this.pythonType = reply.type;
  }
}

let active: Engine | null = null;

export class Engine {
  private readonly pythonia: PythoniaModule;
  private readonly api: Record<string, (...args: unknown[]) => Promise<unknown>>;
  private readonly proc: ChildProcess;
  private readonly exited: Promise<never>;
  private closed = false;
  private closing: Promise<void> | null = null;

  private constructor(pythonia: PythoniaModule, api: Engine['api'], proc: ChildProcess, exited: Promise<never>) {
    this.pythonia = pythonia;
    this.api = api;
    this.proc = proc;
    this.exited = exited;
  }

  /** Start the engine's Python process (one per run) and import micanon.api in it. */
  static async start(options: EngineOptions): Promise<Engine> {
    if (active) throw new Error('the engine is already running in this process');
    const interpreter = options.python ?? engineInterpreter();
    const problem = interpreterProblem(interpreter);
    if (problem) throw new MicanonError(problem.kind === 'unreadable' ? 'ENGINE_UNREADABLE' : 'ENGINE_MISSING', problem.message);
    const threads = String(Math.max(1, Math.floor(options.threads)));
    Object.assign(process.env, {
      PYTHON_BIN: interpreter,
      ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS: threads,
      OMP_NUM_THREADS: threads,
      // numpy's BLAS only ever multiplies 4x4 matrices here: its extra threads only spin, and
      // took CPU from ROBEX and the image work (measured: 27.2 -> 22.3 CPU s a session on A).
      OPENBLAS_NUM_THREADS: '1',
      MKL_NUM_THREADS: '1',
      PYTHONPATH: [pythonSource, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter),
      PYTHONDONTWRITEBYTECODE: '1',
      // python/micanon/lifeline.py: the engine dies with this process (parent-death signal).
      MICANON_ENGINE_PARENT: String(process.pid),
      ...(options.scratchDir ? { TMPDIR: options.scratchDir, MPLCONFIGDIR: path.join(options.scratchDir, 'matplotlib') } : {}),
    });
    const pythonia = require('pythonia') as PythoniaModule;
    const importing = pythonia.python('micanon.api');
    const proc = pythonia.com.proc;
    if (!proc) throw new MicanonError('ENGINE_CRASHED', 'the Python engine did not start');
    // Calls wait on the bridge forever; a Python that dies must fail them instead.
    const exited = new Promise<never>((_, reject) => {
      proc.once('exit', (code, signal) => {
        reject(
          new MicanonError(
            'ENGINE_CRASHED',
            `the Python engine exited unexpectedly (${signal ?? `exit code ${String(code)}`})`,
          ),
        );
      });
    });
    exited.catch(() => undefined);
    killOnExit(proc);
    let api: Engine['api'];
    try {
      api = await Promise.race([importing, exited]);
    } catch (err) {
      stop(pythonia, proc);
      if (err instanceof MicanonError) throw err;
      throw new MicanonError('ENGINE_MISSING', `the Python engine could not import micanon.api`, {
        detail: err instanceof Error ? err.stack : String(err),
      });
    }
    const engine = new Engine(pythonia, api, proc, exited);
    active = engine;
    await handshake(engine, {});
    return engine;
  }

  /** Process id of the Python interpreter (for tests and diagnostics). */
  get pid(): number | undefined {
    return this.proc.pid;
  }

  /**
   * Call `micanon.api.<fn>` with a JSON request; the reply is validated with `schema`. Code calls
   * the typed functions of ./contract.ts, which check the request against the contract first.
   * A Python exception becomes an EngineCallError (one-line message; traceback in the debug log).
   */
  async call<T>(fn: string, request: object, schema: z.ZodType<T>): Promise<T> {
    if (this.closed) throw new MicanonError('ENGINE_CRASHED', `engine.${fn} called after the engine was closed`);
    const method = this.api[`${fn}$`];
    if (!method) throw new Error(`no engine function ${fn}`);
    const started = Date.now();
    let raw: unknown;
    try {
      // `$timeout: Infinity` lifts pythonia's 100 s request limit: registrations may take longer;
      // a dead interpreter is caught by `exited` instead.
      raw = await Promise.race([method(JSON.stringify(request), { $timeout: Infinity }), this.exited]);
    } catch (err) {
      if (err instanceof MicanonError) throw err;
      throw new MicanonError('ENGINE_FAILED', `engine.${fn} failed on the bridge`, {
        detail: err instanceof Error ? err.stack : String(err),
      });
    }
    log.debug(`engine.${fn} answered in ${Date.now() - started} ms`);
    if (typeof raw !== 'string') {
      throw new MicanonError('ENGINE_FAILED', `engine.${fn} returned a ${typeof raw}, not JSON text`);
    }
    const reply = replySchema.parse(JSON.parse(raw));
    if (!reply.ok) {
      const error = new EngineCallError(fn, reply.error);
      log.debug(error.detail ?? '');
      throw error;
    }
    const parsed = schema.safeParse(reply.result);
    if (!parsed.success) {
      throw new MicanonError('ENGINE_FAILED', `engine.${fn} replied in an unexpected shape`, {
        detail: `${z.prettifyError(parsed.error)}\n${raw}`,
      });
    }
    return parsed.data;
  }

  /** Stop the Python process and wait until it is gone. Safe to call twice: both wait. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      active = null;
      this.closing = stop(this.pythonia, this.proc);
    }
    return this.closing;
  }
}

/** SIGTERM the interpreter (then SIGKILL if it lingers) and resolve once it has exited. */
function stop(pythonia: PythoniaModule, proc: ChildProcess): Promise<void> {
  const gone = new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once('exit', () => resolve());
  });
  if (pythonia.com.proc) pythonia.python.exit();
  const hard = setTimeout(() => proc.kill('SIGKILL'), 3000);
  return gone.finally(() => clearTimeout(hard));
}

/** However Node ends (uncaught error, process.exit), the interpreter goes with it. */
function killOnExit(proc: ChildProcess): void {
  const kill = (): void => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  process.once('exit', kill);
  proc.once('exit', () => process.removeListener('exit', kill));
}

/** The engine of this run, if one is running (the CLI's signal handler closes it). */
export function activeEngine(): Engine | null {
  return active;
}
