import { test, expect } from '@playwright/test';
import { gen } from './helpers';

test('an error burst shows on /anomalies, linked to its events and to SQL', async ({ page }) => {
  test.setTimeout(120_000);
  // Twelve minutes of event time, ending five minutes ago, with a burst of errors at 10 minutes.
  const start = new Date(Date.now() - 17 * 60_000).toISOString();
  gen(['--steady', '--rate', '40', '--duration', '720', '--speedup', '60',
    '--start-time', start, '--error-burst', '600:30']);
  await page.goto('/anomalies');
  const row = page.getByTestId('anomaly-table').locator('tr', { hasText: 'error rate up' }).filter({ hasText: 'overall' });
  await expect(row.first()).toBeVisible({ timeout: 60_000 });
  await page.screenshot({ path: 'test-results/anomalies.png', fullPage: true });

  const logs = await row.first().getByTestId('anomaly-logs').getAttribute('href');
  expect(logs).toMatch(/status=5xx/);
  expect(logs).toMatch(/from=/);
  const sql = await row.first().getByTestId('anomaly-sql').getAttribute('href');
  await page.goto(sql!);
  await expect(page.getByTestId('sql-result').locator('thead th')).toHaveText(['minute', 'requests', 'errors', 'p95_ms']);
  await expect(page.getByTestId('sql-result').locator('tbody tr').first()).toBeVisible();
});
