import type { FastifyInstance } from 'fastify';
import type { BlockChannel } from '../../protocol/block-channel.js';
import type { BlockLinks } from '../../protocol/block-link.js';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import type { ClassicConfig } from './config.js';
import { injectApiCaller } from '../inject-api.js';
import { DataPorts } from './ports.js';
import { ClassicSession, type ClassicServices } from './session.js';
import { sharePort } from './shared-port.js';

export { CLASSIC_DEFAULTS, parseClassicListen, parseDataPorts, type ClassicConfig } from './config.js';

export interface ClassicServer {
  /** The port of its own listener; undefined when it shares the HTTP port. */
  port?: number;
  /** Closes every classic session (and the connections not yet told apart); HTTP is left to its server. */
  stop(): Promise<void>;
}

/**
 * Serves the seed's classic protocol on the name server's port, beside HTTP (call before the app
 * listens), or on an address of its own. Requests run through the app's own routes (in-process), and
 * file bytes go to and from the storage servers with an agent of their own.
 */
export async function attachClassic(app: FastifyInstance, config: ClassicConfig, internalToken: string,
  writers: { dispatcher: Dispatcher; links: BlockLinks }, channel: BlockChannel): Promise<ClassicServer> {
  const services: ClassicServices = {
    api: injectApiCaller(app, internalToken),
    ...writers,
    channel,
    ports: new DataPorts(config.dataPortMin, config.dataPortMax),
    config,
  };
  const sessions = new Map<ClassicSession, Promise<void>>();
  let stopped = false;
  const onClassic = (socket: Socket, head: Buffer): void => {
    if (stopped) return void socket.destroy();
    const session = new ClassicSession(socket, head, services);
    const done = sessions.size >= config.maxSessions
      ? session.refuse(`too many classic sessions (${config.maxSessions}); try again later`)
      : session.run();
    sessions.set(session, done.finally(() => sessions.delete(session)));
  };
  let door: { stop(): void };
  let port: number | undefined;
  if (config.listen === 'shared') {
    // The seed's client connects at start and is silent until its first command: it waits here until then.
    door = sharePort(app.server, { idleTimeoutMs: config.idleTimeoutMs, maxPending: config.maxSessions, onClassic });
  } else if (config.listen === 'off') {
    throw new Error('attachClassic called with the classic protocol off');
  } else {
    const server: Server = createServer((socket) => onClassic(socket, Buffer.alloc(0)));
    server.listen(config.listen.port, config.listen.host);
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => { throw err as Error; })]);
    const address = server.address();
    port = typeof address === 'object' && address ? address.port : config.listen.port;
    door = { stop: () => void server.close() };
  }

  return {
    port,
    async stop() {
      stopped = true;
      door.stop();
      for (const session of sessions.keys()) session.destroy();
      await Promise.allSettled([...sessions.values()]);
    },
  };
}
