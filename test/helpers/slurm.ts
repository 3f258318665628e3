/**
 * A one-node SLURM cluster for a test (Debian's slurm-wlm 22.05 + munge, see ../shared/SLURM.md):
 * slurmctld and slurmd on loopback, with their own slurm.conf, munge key, state, spool and logs
 * in one temporary folder, on a port pair no default cluster uses. Needs root (munged runs as the
 * munge user, the daemons as root). Stopped by the pids in its own pid files, never by name.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, hostname, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { alive, waitUntil } from './processes.js';

const DAEMONS = { munged: '/usr/sbin/munged', slurmctld: '/usr/sbin/slurmctld', slurmd: '/usr/sbin/slurmd' };
const CLIENTS = ['sbatch', 'squeue', 'scontrol', 'sinfo', 'scancel'];

/** Why a cluster cannot be started here, or null when it can. */
export function slurmUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (munged runs as the munge user, slurmd as root): CI runs as root';
  const missing = Object.values(DAEMONS).filter((p) => !existsSync(p));
  for (const client of CLIENTS) {
    try {
      execFileSync('sh', ['-c', `command -v ${client}`], { stdio: 'ignore' });
    } catch {
      missing.push(client);
    }
  }
  if (missing.length) return `slurm-wlm and munge are not installed (${missing.join(', ')} missing; .ci/run installs them with apt-get install slurm-wlm munge)`;
  try {
    execFileSync('id', ['munge'], { stdio: 'ignore' });
  } catch {
    return 'the munge user does not exist (the munge package makes it)';
  }
  return null;
}

export interface Cluster {
  dir: string;
  /** The environment every SLURM client needs (SLURM_CONF), on top of process.env. */
  env: NodeJS.ProcessEnv;
  partition: string;
  stop(): Promise<void>;
}

function pidIn(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

async function stopPid(file: string): Promise<void> {
  const pid = pidIn(file);
  if (pid === null || !alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  if (!(await waitUntil(() => !alive(pid), 10_000, 100))) process.kill(pid, 'SIGKILL');
}

/**
 * Start the cluster and wait until its node is idle. `port`: slurmctld's; slurmd's is the next.
 * On any failure what was started is stopped again and the error names the daemon's log.
 */
export async function startCluster(options: { port?: number } = {}): Promise<Cluster> {
  // A pair of its own per test process, so two suites on one machine do not meet.
  const port = options.port ?? 17800 + 2 * (process.pid % 400);
  const dir = mkdtempSync(path.join(tmpdir(), 'micanon-slurm-'));
  for (const sub of ['state', 'spool', 'log', 'munge']) mkdirSync(path.join(dir, sub));
  const munge = path.join(dir, 'munge');
  const key = path.join(munge, 'munge.key');
  writeFileSync(key, execFileSync('head', ['-c', '1024', '/dev/urandom']), { mode: 0o600 });
  const uid = Number(execFileSync('id', ['-u', 'munge']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'munge']).toString().trim());
  chownSync(munge, uid, gid);
  chownSync(key, uid, gid);
  // munged's temp dir holds the socket's parent on some builds; it also wants to traverse dir.
  mkdirSync('/run/munge', { recursive: true });
  chownSync('/run/munge', uid, gid);
  execFileSync('chmod', ['755', dir]);
  const host = hostname().split('.')[0]!;
  const memoryMb = Math.floor((totalmem() / 2 ** 20) * 0.8);
  const conf = path.join(dir, 'slurm.conf');
  writeFileSync(
    conf,
    [
      'ClusterName=micanontest',
      `SlurmctldHost=${host}(127.0.0.1)`,
      `SlurmctldPort=${port}`,
      `SlurmdPort=${port + 1}`,
      'AuthType=auth/munge',
      `AuthInfo=socket=${munge}/munge.sock`,
      'CryptoType=crypto/munge',
      'SlurmUser=root',
      'SlurmdUser=root',
      `StateSaveLocation=${dir}/state`,
      `SlurmdSpoolDir=${dir}/spool`,
      `SlurmctldPidFile=${dir}/slurmctld.pid`,
      `SlurmdPidFile=${dir}/slurmd.pid`,
      `SlurmctldLogFile=${dir}/log/slurmctld.log`,
      `SlurmdLogFile=${dir}/log/slurmd.log`,
      'ProctrackType=proctrack/linuxproc',
      'TaskPlugin=task/none',
      'SelectType=select/cons_tres',
      'SelectTypeParameters=CR_CPU',
      'SchedulerType=sched/backfill',
      'ReturnToService=2',
      'JobAcctGatherType=jobacct_gather/none',
      'AccountingStorageType=accounting_storage/none',
      'MpiDefault=none',
      // Finished jobs stay in `scontrol show job` for 10 minutes (no accounting database here).
      'MinJobAge=600',
      `NodeName=${host} NodeAddr=127.0.0.1 CPUs=${availableParallelism()} RealMemory=${memoryMb} State=UNKNOWN`,
      `PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP`,
      '',
    ].join('\n'),
  );
  const env = { ...process.env, SLURM_CONF: conf };
  const cluster: Cluster = {
    dir,
    env,
    partition: 'debug',
    async stop() {
      // Jobs first (this cluster's only), then the daemons by their pid files, then the folder.
      const jobs = await execa('squeue', ['-h', '-o', '%A'], { env, reject: false, timeout: 10_000 });
      const ids = String(jobs.stdout ?? '').split('\n').filter((l) => /^\d+$/.test(l.trim()));
      if (ids.length) await execa('scancel', ids, { env, reject: false, timeout: 10_000 });
      for (const daemon of ['slurmd', 'slurmctld']) await stopPid(path.join(dir, `${daemon}.pid`));
      await stopPid(path.join(munge, 'munged.pid'));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await execa('runuser', ['-u', 'munge', '--', DAEMONS.munged, `--key-file=${key}`, `--socket=${munge}/munge.sock`, `--pid-file=${munge}/munged.pid`, `--log-file=${munge}/munged.log`, '--force']);
    await execa(DAEMONS.slurmctld, ['-f', conf], { env });
    await execa(DAEMONS.slurmd, ['-f', conf], { env });
    let state = '';
    const ready = await waitUntil(
      () => {
        try {
          state = execFileSync('sinfo', ['-h', '-o', '%t'], { env, timeout: 5000 }).toString().trim();
        } catch {
          state = '';
        }
        return state === 'idle';
      },
      30_000,
      500,
    );
    if (!ready) throw new Error(`the node is "${state}", not idle, after 30 s (logs in ${dir}/log)`);
  } catch (err) {
    const logs = ['log/slurmctld.log', 'log/slurmd.log', 'munge/munged.log']
      .map((f) => path.join(dir, f))
      .filter(existsSync)
      .map((f) => `--- ${path.basename(f)}\n${readFileSync(f, 'utf8').split('\n').slice(-15).join('\n')}`)
      .join('\n');
    await cluster.stop();
    throw new Error(`${(err as Error).message}\n${logs}`);
  }
  return cluster;
}
