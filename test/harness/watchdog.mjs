// Cleans up after a test process that died without doing so itself.
// The parent writes "+<pid>" when it starts a server and "-<pid>" when that server
// exits, "+dir <path>" when it creates a data directory and "-dir <path>" when it
// removes it. When stdin closes (the parent exited, however it died) every pid
// still listed gets SIGKILL and every directory still listed is removed.
import { rmSync } from 'node:fs';

// Signals to the whole process group must not kill the watchdog before its parent.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => {});

const pids = new Set();
const dirs = new Set();
let buffered = '';

function killAll() {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buffered += chunk;
  for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
    const line = buffered.slice(0, i);
    buffered = buffered.slice(i + 1);
    const add = line[0] === '+';
    if (line.startsWith('dir ', 1)) {
      const dir = line.slice(5);
      if (add) dirs.add(dir);
      else dirs.delete(dir);
      continue;
    }
    const pid = Number(line.slice(1));
    if (!Number.isInteger(pid) || pid <= 0) continue;
    if (add) pids.add(pid);
    else pids.delete(pid);
  }
});
process.stdin.on('end', killAll);
process.stdin.on('error', killAll);
