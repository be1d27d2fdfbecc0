import { test, expect, type APIRequestContext } from '@playwright/test';
import { produce, settledLake } from './helpers';

const SOURCE = 'catalog-service';

/** The lake's answer to `sql`, each row as an object of column to value. */
async function rows(request: APIRequestContext, sql: string): Promise<Record<string, unknown>[]> {
  return (await (await request.post('/api/query', { data: { query: sql } })).json()).results;
}

const millis = (t: unknown) => new Date(String(t)).getTime();

test('a log line links to its context: the events around it from its source, as the lake has them, by URL', async ({ page, request }) => {
  produce(400);
  await settledLake(request);
  await page.goto(`/logs?source=${SOURCE}`);
  await expect(page.locator('html')).toHaveAttribute('data-hydrated', '');
  // A line from the middle of the list, so there is context on both sides.
  const line = page.getByTestId('log-list').locator('li').nth(20);
  const time = await line.locator('time').innerText();
  await line.locator('button.logline').click();
  await line.getByTestId('context-link').click();
  await expect(page).toHaveURL(/\/context\?source=catalog-service&at=/);

  const list = page.getByTestId('context-list');
  await expect(list.locator('li.anchor').first()).toBeVisible();
  await expect(list.locator('li.anchor time').first()).toHaveText(time);
  expect(new Set(await list.locator('.source').allInnerTexts())).toEqual(new Set([SOURCE]));

  // The page shows what the API answers for the same URL, and that is the lake's newest events
  // up to the instant and its oldest after it: checked against a query of its own.
  const url = new URL(page.url());
  const context = await (await request.get(`/api/context${url.search}`)).json();
  await expect(list.locator('li')).toHaveCount(context.lines.length);
  const at = url.searchParams.get('at')!;
  const before = await rows(request, `SELECT timestamp FROM logs WHERE source = '${SOURCE}' AND timestamp <= '${at}' ORDER BY timestamp DESC LIMIT 26`);
  const after = await rows(request, `SELECT timestamp FROM logs WHERE source = '${SOURCE}' AND timestamp > '${at}' ORDER BY timestamp LIMIT 25`);
  expect(before.length).toBeGreaterThan(20);
  const expected = [...before.reverse(), ...after].map((r) => millis(r.timestamp));
  expect(context.lines.map((l: { event: { timestamp: string } }) => millis(l.event.timestamp))).toEqual(expected);
  expect(context.lines.every((l: { committed: boolean }) => l.committed)).toBe(true);

  // Shared by its link: a reload (or another browser) shows the same lines.
  const shown = await list.locator('li time').allInnerTexts();
  await page.reload();
  await expect(list.locator('li time')).toHaveText(shown);
  await page.screenshot({ path: 'test-results/context.png', fullPage: true });
});

test('a query result row links to its context, which narrows to the session and opens as SQL, without JavaScript', async ({ browser, request }) => {
  produce(200);
  await settledLake(request);
  const noScript = await browser.newContext({ javaScriptEnabled: false });
  const page = await noScript.newPage();
  const sql = `SELECT timestamp, source, session_id, endpoint FROM logs WHERE session_id IS NOT NULL ORDER BY timestamp DESC LIMIT 5`;
  await page.goto(`/query?sql=${encodeURIComponent(sql)}`);
  const row = page.getByTestId('sql-result').locator('tbody tr').nth(2);
  const session = await row.locator('td').nth(2).innerText();
  const source = await row.locator('td').nth(1).innerText();
  await row.getByTestId('row-context').click();
  await expect(page).toHaveURL(/\/context\?/);
  await expect(page.getByTestId('context-list').locator('li.anchor').first()).toBeVisible();

  await page.getByTestId('context-narrow').filter({ hasText: session }).click();
  await expect(page).toHaveURL(new RegExp(`session=${session}`));
  await expect(page.getByRole('heading', { name: new RegExp(`session ${session} of ${source}`) })).toBeVisible();
  const narrowed = new URL(page.url());
  const context = await (await request.get(`/api/context${narrowed.search}`)).json();
  expect(context.lines.length).toBeGreaterThan(0);
  expect(new Set(context.lines.map((l: { event: { sessionId: string } }) => l.event.sessionId))).toEqual(new Set([session]));
  const lines = await page.getByTestId('context-list').locator('li').count();
  expect(lines).toBe(context.lines.length);

  // Its SQL, run in the workbench, gives the same events.
  await page.getByTestId('context-sql').click();
  await expect(page).toHaveURL(/\/query\?sql=/);
  await expect(page.getByTestId('sql-result').locator('tbody tr')).toHaveCount(lines);
  await noScript.close();
});

test('a context URL without a source or with a bad time says what is wrong', async ({ page, request }) => {
  await page.goto('/context?at=2026-12-05T06:00:00Z');
  await expect(page.getByTestId('context-error')).toContainText('source');
  await page.goto('/context?source=web&at=yesterday');
  await expect(page.getByTestId('context-error')).toContainText('yesterday');
  const refused = await request.get('/api/context?source=web&at=yesterday');
  expect(refused.status()).toBe(400);
  expect((await refused.json()).error).toContain('yesterday');
});
