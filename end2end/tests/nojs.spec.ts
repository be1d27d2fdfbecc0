import { test, expect } from '@playwright/test';
import { produce, settledTotal } from './helpers';

test('every page is server-rendered with the server\'s own numbers, JavaScript off', async ({ browser, request }) => {
  produce(30);
  const total = await settledTotal(request);
  expect(total).toBeGreaterThanOrEqual(30);
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();

  await page.goto('/');
  await expect(page.getByTestId('total-requests')).toHaveText(String(total));
  await expect(page.getByTestId('status-lake')).toContainText('rows committed');

  // The explorer lists the newest events, the ones the API lists, in its order.
  const newest = ((await (await request.get('/api/logs?limit=10')).json()) as { seq: number }[]).map((e) => e.seq);
  expect(newest).toHaveLength(10);
  await page.goto('/logs');
  const shown = await page.getByTestId('log-list').locator('li').evaluateAll(
    (rows) => rows.slice(0, 10).map((row) => Number(row.getAttribute('data-seq'))));
  expect(shown).toEqual(newest);

  // Anomalies: one row for each the API lists (an earlier spec raised some).
  await expect(async () => {
    await page.goto('/anomalies');
    const listed = (await (await request.get('/api/anomalies')).json()) as unknown[];
    expect(await page.getByTestId('anomaly-table').locator('tbody tr').count()).toBe(listed.length);
  }).toPass({ timeout: 20_000 });
  await expect(page.getByTestId('status-kafka')).toContainText('Kafka');

  // The workbench answers its URL's query in the page itself.
  // Once the lake holds every event counted (and so stops changing), page and API agree.
  const count = 'SELECT count(*) AS n FROM logs';
  await expect(async () => {
    const answer = await (await request.post('/api/query', { data: { query: count } })).json();
    expect(answer.rows[0][0]).toBe(total);
  }).toPass({ timeout: 30_000 });
  await page.goto(`/query?sql=${encodeURIComponent(count)}`);
  await expect(page.getByTestId('sql-result').locator('tbody td').first()).toHaveText(String(total));
  await context.close();
});
