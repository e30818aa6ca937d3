/** Types of doc-examples.mjs, for the tests that import it. */
export declare const ROOT: string;
export declare const DOCS: readonly string[];
export interface CodeBlock {
  readonly lang: string;
  readonly code: string;
  readonly file: string | undefined;
  readonly start: number;
  readonly end: number;
}
export declare function codeBlocks(markdown: string, docPath: string): CodeBlock[];
export declare function isCode(block: CodeBlock): boolean;
export declare function check(): string[];
