import { test, expect, type Page } from '@playwright/test';
import { produce, settledTotal } from './helpers';

async function totalRequests(page: Page): Promise<number> {
  return Number(await page.getByTestId('total-requests').innerText());
}

test('the first HTML already carries the numbers, before any script runs', async ({ browser, request }) => {
  produce(5);
  const total = await settledTotal(request);
  expect(total).toBeGreaterThanOrEqual(5);
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto('/');
  // The API's number, in the HTML as served: not a placeholder, not zero.
  await expect(page.getByTestId('total-requests')).toHaveText(String(total));
  await expect(page.getByTestId('status-kafka')).toContainText('Kafka');
  await expect(page.getByTestId('sql-input')).toBeVisible();
  await context.close();
});

test('totals move without a reload as events arrive', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByTestId('status-stream')).toHaveAttribute('data-state', 'connected');
  const before = await totalRequests(page);
  produce(40);
  await expect(page.getByTestId('total-requests')).toHaveText(String(before + 40));
  await expect(page.getByTestId('log-list').locator('li').first()).toBeVisible();
  await page.screenshot({ path: 'test-results/dashboard.png', fullPage: true });
});

test('SQL from the dashboard answers from the lake', async ({ page }) => {
  produce(10);
  await page.goto('/');
  await expect(page.getByTestId('status-stream')).toHaveAttribute('data-state', 'connected');
  const expected = await totalRequests(page);
  await page.getByTestId('sql-input').fill('SELECT count(*) AS n FROM delta_lake.logs');
  // The lake commits within a second or so; run until the table has caught up with the live view.
  await expect(async () => {
    await page.getByTestId('sql-run').click();
    await expect(page.getByTestId('sql-result').locator('tbody td').first()).toHaveText(String(expected), {
      timeout: 2_000,
    });
  }).toPass({ timeout: 30_000 });
  await expect(page.getByTestId('sql-summary')).toContainText('1 rows');

  await page.getByTestId('sql-input').fill('SELECT nope FROM logs');
  await page.getByTestId('sql-run').click();
  await expect(page.getByTestId('sql-error')).toContainText('nope');
});

test('the time window lives in the URL and survives a reload', async ({ page }) => {
  produce(5);
  await page.goto('/');
  await expect(page.getByTestId('status-stream')).toHaveAttribute('data-state', 'connected');
  await page.getByTestId('window-1h').click();
  await expect(page).toHaveURL(/\?window=1h$/);
  await expect(page.getByTestId('window-1h')).toHaveAttribute('aria-current', 'page');
  await expect(page.getByText('p95 (1h)')).toBeVisible();
  await page.reload();
  await expect(page.getByText('p95 (1h)')).toBeVisible();
  await expect(page.getByTestId('window-requests')).not.toHaveText('0');
});

test('charts draw on canvas and update in place as events arrive', async ({ page }) => {
  test.setTimeout(90_000);
  await page.goto('/');
  await expect(page.getByTestId('status-stream')).toHaveAttribute('data-state', 'connected');
  for (const id of ['chart-requests', 'chart-latency', 'chart-status', 'chart-endpoints']) {
    await expect(page.locator(`#${id} canvas`)).toHaveCount(1);
  }
  // Mark the canvas: an update in place keeps it, a re-created chart would not.
  await page.locator('#chart-requests canvas').evaluate((canvas) => canvas.setAttribute('data-marker', 'kept'));
  // Requests plotted for the last 30 s; what earlier tests produced ages out first (nothing
  // else produces meanwhile), so the 500 counted after are this test's.
  const recent = () =>
    page.evaluate(() => {
      const chart = (window as any).echarts.getInstanceByDom(document.getElementById('chart-requests'));
      return (chart.getOption().series[0].data as number[]).slice(-3).reduce((sum, n) => sum + (n ?? 0), 0);
    });
  await expect.poll(recent, { timeout: 40_000 }).toBe(0);
  produce(500);
  await expect.poll(recent, { timeout: 20_000 }).toBeGreaterThanOrEqual(500);
  await expect(page.locator('#chart-requests canvas[data-marker="kept"]')).toHaveCount(1);
  await page.screenshot({ path: 'test-results/dashboard-charts.png', fullPage: true });
});
