import { test, expect } from '@playwright/test';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { produce } from './helpers';

// A server of this test's own, so it can be stopped and started again.
const PORT = 3323;
const BASE = `http://127.0.0.1:${PORT}`;
const BROKER_PORT = 19394;

test('after a server restart the page reconnects by itself and says so', async ({ page }) => {
  test.setTimeout(120_000);
  const env = {
    ...process.env,
    PORT: String(PORT),
    EMBEDDED_BROKER_PORT: String(BROKER_PORT),
    DATA_DIR: mkdtempSync(join(tmpdir(), 'lakepulse-restart-')),
    DEMO: '0',
  };
  const start = () => spawn(process.env.LAKEPULSE_BIN!, ['serve'], { env, stdio: 'ignore' });
  const healthy = () =>
    expect
      .poll(async () => (await fetch(`${BASE}/health`).catch(() => null))?.status ?? 0, { timeout: 60_000 })
      .toBe(200);

  let server = start();
  try {
    await healthy();
    await page.goto(`${BASE}/`);
    const stream = page.getByTestId('status-stream');
    await expect(stream).toHaveAttribute('data-state', 'connected');

    server.kill('SIGTERM');
    await once(server, 'exit');
    await expect(stream).toHaveAttribute('data-state', 'down', { timeout: 20_000 });

    server = start();
    await healthy();
    await expect(stream).toHaveAttribute('data-state', 'connected', { timeout: 30_000 });
    await expect(stream).toContainText('reconnected at');
    // And data flows again: events produced now move the page's total by exactly that much.
    const total = page.getByTestId('total-requests');
    const before = Number(await total.innerText());
    produce(25, BROKER_PORT);
    await expect(total).toHaveText(String(before + 25), { timeout: 20_000 });
  } finally {
    server.kill('SIGTERM');
  }
});
