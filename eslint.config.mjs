// @ts-check
/**
 * Lint rules (STYLE.md C1, C2, C15): strict TypeScript rules, component boundaries
 * (a component imports only src/shared and a peer's protocol/ folder), and pure core/ folders
 * (no I/O modules, no ambient clock or randomness). The web UI (web/, STYLE.md C13) imports only
 * protocol/ folders of src/, its model/ is framework-free and pure, and React's hook rules apply.
 */
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import reactHooks from 'eslint-plugin-react-hooks';

/** The web UI (all of it, its model too) imports only the protocol/ folders of src/. */
const WEB_IMPORTS_PROTOCOL_ONLY = { regex: '(^|/)src/(?!\\w+/protocol/)', message: 'the web UI imports only the protocol/ folders of src/ (STYLE.md C1, C14).' };

const components = ['rack', 'foundation', 'installer', 'hypervisor', 'cvm', 'prism', 'lcm', 'health'];

/** For component C: ban imports of any other component's internals (protocol/ is allowed). */
const boundaryRules = components.map((c) => ({
  files: [`src/${c}/**/*.ts`],
  rules: {
    'no-restricted-imports': ['error', {
      patterns: components.filter((o) => o !== c).map((o) => ({
        regex: `(^|/)${o}/(?!protocol/)`,
        message: `src/${c} may import only src/shared and the protocol/ folder of ${o} (STYLE.md C1).`,
      })).concat([{ regex: '(^|/)cli/', message: 'components do not import the CLI' }]),
    }],
  },
}));

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'web/dist/**', 'web/prism/dist/**', 'scripts/*.mjs', 'bin/**', 'eslint.config.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/explicit-module-boundary-types': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      'import-x/no-cycle': 'error',
      'import-x/no-default-export': 'error',
      eqeqeq: ['error', 'always'],
    },
  },
  ...boundaryRules,
  {
    files: ['web/src/**/*.{ts,tsx}', 'web/prism/src/**/*.{ts,tsx}'],
    ignores: ['web/src/**/*.test.ts', 'web/src/**/fixtures/**', 'web/prism/src/**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          WEB_IMPORTS_PROTOCOL_ONLY,
          { regex: '^node:', message: 'the web UI runs in the browser: no Node modules.' },
        ],
      }],
    },
  },
  {
    files: ['web/src/model/**/*.ts', 'web/prism/src/model/**/*.ts'],
    ignores: ['web/src/model/**/*.test.ts', 'web/src/model/fixtures/**', 'web/prism/src/model/**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          WEB_IMPORTS_PROTOCOL_ONLY,
          { regex: '^(node:|react|@xyflow/)', message: 'web/src/model is framework-free and pure: no React, no React Flow, no I/O (STYLE.md C13).' },
          { regex: '/(view|live)/', message: 'web/src/model may not import the view or the live feed (STYLE.md C13).' },
        ],
      }],
      'no-restricted-globals': ['error', 'window', 'document', 'fetch', 'EventSource', 'setTimeout', 'setInterval', 'localStorage'],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'the model takes the time as an argument' },
        { object: 'Math', property: 'random', message: 'the model is deterministic' }],
    },
  },
  {
    files: ['web/src/**/*.tsx', 'web/prism/src/**/*.tsx'],
    plugins: { 'react-hooks': reactHooks },
    rules: reactHooks.configs.flat['recommended-latest'].rules,
  },
  {
    // Vite reads the config's default export; import-x cannot follow vite's own package layout
    files: ['web/vite.config.ts', 'web/prism/vite.config.ts'],
    rules: { 'import-x/no-default-export': 'off', 'import-x/no-cycle': 'off' },
  },
  {
    files: ['src/**/core/**/*.ts'],
    ignores: ['src/**/core/**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { regex: '^node:', message: 'core/ is pure: no I/O modules (STYLE.md C2).' },
          { regex: '^(fs|net|tls|http|https|child_process|dgram|os)$', message: 'core/ is pure: no I/O modules (STYLE.md C2).' },
          { regex: '/node/', message: 'core/ may not import node/ adapters (STYLE.md C2).' },
        ],
      }],
      'no-restricted-globals': ['error', 'setTimeout', 'setInterval', 'fetch'],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'use the injected Clock' },
        { object: 'Math', property: 'random', message: 'use the injected Random' }],
    },
  },
  {
    files: ['**/*.test.ts', 'test/**/*.ts', 'bench/**/*.ts', 'web/src/**/fixtures/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/explicit-module-boundary-types': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
