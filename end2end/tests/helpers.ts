import { execFileSync } from 'node:child_process';
import { expect, type APIRequestContext } from '@playwright/test';
import { BROKER_PORT } from '../playwright.config';

/** Runs `lakepulse gen` against the test server's broker (or `brokerPort`'s), as any producing
 * service would. */
export function gen(args: string[], brokerPort: number = BROKER_PORT) {
  execFileSync(process.env.LAKEPULSE_BIN!, ['gen', ...args], {
    env: { ...process.env, KAFKA_BROKERS: `127.0.0.1:${brokerPort}`, RUST_LOG: 'warn' },
    stdio: 'inherit',
    timeout: 60_000,
  });
}

/** Produces `count` realistic events, fast. */
export function produce(count: number, brokerPort: number = BROKER_PORT) {
  gen(['--count', String(count), '--rate', '2000'], brokerPort);
}

/** The server's request total, once it has stopped moving: every event produced so far counted. */
export async function settledTotal(request: APIRequestContext, base = ''): Promise<number> {
  let last = -1;
  for (;;) {
    const total = (await (await request.get(`${base}/api/metrics`)).json()).totalRequests as number;
    if (total === last) return total;
    last = total;
    await new Promise((resolve) => setTimeout(resolve, 1_500));
  }
}

/** Waits until the lake holds every event counted so far, and so stops changing (nothing else
 * produces): pages and the API then read the same table. The count it holds. */
export async function settledLake(request: APIRequestContext): Promise<number> {
  const total = await settledTotal(request);
  await expect(async () => {
    const answer = await (await request.post('/api/query', { data: { query: 'SELECT count(*) FROM logs' } })).json();
    expect(answer.rows[0][0]).toBe(total);
  }).toPass({ timeout: 30_000 });
  return total;
}
