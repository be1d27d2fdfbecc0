import { test, expect } from '@playwright/test';

// The API's own document, rendered by Swagger UI as lakepulse serves it (no CDN): a reader
// finds each endpoint and the shape of its answer.
test('the API page renders the OpenAPI document with every endpoint', async ({ page, request }) => {
  const document = await (await request.get('/api/openapi.json')).json();
  expect(document.openapi).toMatch(/^3\.1\./);
  // What fails to load, but the dashboard's live stream, which leaving the page cuts, rightly.
  const failed: string[] = [];
  page.on('requestfailed', (r) => { if (!r.url().includes('/events')) failed.push(r.url()); });
  page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
  await page.goto('/');
  await page.locator('html[data-hydrated]').waitFor();
  await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'API' }).click();
  await expect(page).toHaveURL(/\/api-docs\/$/);
  await expect(page.getByRole('heading', { name: /lakepulse/ })).toBeVisible();
  for (const path of Object.keys(document.paths)) {
    await expect(page.locator('.opblock-summary-path', { hasText: new RegExp(`^${path.replace(/[{}./]/g, '\\$&')}$`) }).first()).toBeVisible();
  }
  await page.locator('.opblock-summary-path', { hasText: /^\/api\/query$/ }).first().click();
  await expect(page.getByText('executionTime').first()).toBeVisible();
  expect(failed).toEqual([]);
});
