import type { FastifyInstance } from 'fastify';
import type { Socket } from 'node:net';
import { newAgent } from '../../protocol/http.js';
import type { ClassicConfig } from './config.js';
import { injectApiCaller } from '../inject-api.js';
import { DataPorts } from './ports.js';
import { ClassicSession, type ClassicServices } from './session.js';
import { sharePort } from './shared-port.js';

export { CLASSIC_DEFAULTS, parseDataPorts, type ClassicConfig } from './config.js';

export interface ClassicServer {
  /** Closes every classic session (and the connections not yet told apart); HTTP is left to its server. */
  stop(): Promise<void>;
}

/**
 * Serves the seed's classic protocol on the name server's port, beside HTTP: call before the app
 * listens. Requests run through the app's own routes (in-process), and file bytes go to and from the
 * storage servers with an agent of their own.
 */
export function attachClassic(app: FastifyInstance, config: ClassicConfig): ClassicServer {
  const services: ClassicServices = {
    api: injectApiCaller(app),
    dispatcher: newAgent(),
    ports: new DataPorts(config.dataPortMin, config.dataPortMax),
    config,
  };
  const sessions = new Map<ClassicSession, Promise<void>>();
  let stopped = false;
  const door = sharePort(app.server, {
    idleTimeoutMs: config.idleTimeoutMs,
    // The seed's client connects at start and is silent until its first command: it waits here until then.
    maxPending: config.maxSessions,
    onClassic(socket: Socket, head: Buffer) {
      if (stopped) return void socket.destroy();
      const session = new ClassicSession(socket, head, services);
      const done = sessions.size >= config.maxSessions
        ? session.refuse(`too many classic sessions (${config.maxSessions}); try again later`)
        : session.run();
      sessions.set(session, done.finally(() => sessions.delete(session)));
    },
  });

  return {
    async stop() {
      stopped = true;
      door.stop();
      for (const session of sessions.keys()) session.destroy();
      await Promise.allSettled([...sessions.values()]);
      await services.dispatcher.close();
    },
  };
}
