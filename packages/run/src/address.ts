import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { createServer, isIP } from 'node:net';
import { UsageError } from './hosts.js';

/**
 * The local address the kernel would use to reach `host`: connecting a UDP socket sends
 * nothing, it only picks the route. In a network namespace this is that namespace's address.
 */
export async function sourceAddressFor(host: string): Promise<string> {
  let ip = host;
  if (!isIP(host)) {
    try {
      ip = (await lookup(host)).address;
    } catch (err) {
      throw new UsageError(`cannot resolve host ${host}: ${(err as Error).message}`);
    }
  }
  const sock = createSocket(isIP(ip) === 6 ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.connect(9, ip, () => resolve());
    });
    return sock.address().address;
  } catch (err) {
    throw new UsageError(`no route to host ${host}: ${(err as Error).message}`);
  } finally {
    sock.close();
  }
}

const WILDCARD = new Set(['0.0.0.0', '::', '[::]']);

/**
 * Where the rendezvous listens and the address workers are told. Local-only jobs stay on
 * loopback. With remote hosts, the address must be one every host reaches: `--bind` names it
 * (a wildcard listens everywhere and advertises the routed address), or, when every remote
 * host is routed through the same local address, that address is used; otherwise refuse.
 */
export async function chooseAddress(
  bind: string | undefined,
  remoteHosts: string[],
): Promise<{ listen: string; advertise: string }> {
  if (remoteHosts.length === 0)
    return { listen: bind ?? '127.0.0.1', advertise: bind && !WILDCARD.has(bind) ? bind : '127.0.0.1' };
  if (bind && !WILDCARD.has(bind)) return { listen: bind, advertise: bind };
  const sources = new Map<string, string[]>();
  for (const h of remoteHosts) {
    const src = await sourceAddressFor(h);
    sources.set(src, [...(sources.get(src) ?? []), h]);
  }
  if (sources.size > 1) {
    const how = [...sources].map(([src, hs]) => `${hs.join(', ')} via ${src}`).join('; ');
    throw new UsageError(
      `the hosts reach this machine through different addresses (${how}); pass --bind ADDR with one they all reach`,
    );
  }
  const [src] = sources.keys();
  return { listen: bind ?? src, advertise: src };
}

/**
 * Fails clearly when this machine cannot listen on `host` (not one of its addresses). Checked
 * up front because RendezvousServer.listen() lets such an error escape as an unhandled 'error'.
 */
export async function assertCanListen(host: string): Promise<void> {
  const srv = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(0, host, () => resolve());
    });
  } catch (err) {
    throw new UsageError(`the rendezvous cannot listen on ${host}: ${(err as Error).message}`);
  } finally {
    srv.close();
  }
}
