import { execFileSync } from 'node:child_process';
import { BROKER_PORT } from '../playwright.config';

/** Runs `lakepulse gen` against the test server's broker, as any producing service would. */
export function gen(args: string[]) {
  execFileSync(process.env.LAKEPULSE_BIN!, ['gen', ...args], {
    env: { ...process.env, KAFKA_BROKERS: `127.0.0.1:${BROKER_PORT}`, RUST_LOG: 'warn' },
    stdio: 'inherit',
    timeout: 60_000,
  });
}

/** Produces `count` realistic events, fast. */
export function produce(count: number) {
  gen(['--count', String(count), '--rate', '2000']);
}
