// Where the console lives: "/" on its own host, "/pacs/" behind a proxy that publishes it under
// a path. The server writes <base href> into index.html from X-Forwarded-Prefix, so the app
// reads its base from the document instead of assuming the root.

/** The console's base path, always ending in "/". */
export function basePath(): string {
  const path = new URL(document.baseURI).pathname
  return path.endsWith('/') ? path : path.replace(/[^/]*$/, '')
}

/** A server path ("/api/studies", "/ohif/viewer?...") as the browser must ask for it. */
export function serverUrl(path: string): string {
  return path.startsWith('/') ? basePath() + path.slice(1) : path
}
