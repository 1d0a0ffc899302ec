// A free loopback port for a server a test starts, shared by the SDK's integration test and
// the browser tests. It is picked below the kernel's ephemeral range: a port the kernel hands
// out for `listen(0)` can be taken again by any outgoing connection (a NATS or database
// client) before the server meant to use it binds, which made a test fail now and then with
// "address already in use". Ports handed out here are never handed out twice in one process.
import { readFileSync } from "node:fs";
import net from "node:net";

const given = new Set();

function range() {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").split(/\s+/)[0]);
    if (low > 21000) return [20000, low - 1];
  } catch {
    // not Linux: any unprivileged port
  }
  return [1024, 65535];
}

function canListen(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

export async function freePort() {
  const [lo, hi] = range();
  for (let tries = 0; tries < 1000; tries++) {
    const port = lo + Math.floor(Math.random() * (hi - lo + 1));
    if (given.has(port)) continue;
    given.add(port);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port in ${lo}-${hi} after 1000 tries`);
}
