// Copies the Lua scripts next to the compiled loader, which reads them at runtime.
import { cpSync, mkdirSync, readdirSync } from 'node:fs';

mkdirSync('dist/scripts', { recursive: true });
for (const name of readdirSync('src/scripts')) {
  if (name.endsWith('.lua')) cpSync(`src/scripts/${name}`, `dist/scripts/${name}`);
}
