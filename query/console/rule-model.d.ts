// Types of rule-model.js (plain JS served to the browser as is), for its Node test.
export type CompareOp = '==' | '!=' | '>' | '>=' | '<' | '<=' | 'in_list' | 'contains' | 'exists' | 'missing';
export interface Compare {
  field: string;
  op: CompareOp;
  type: 'text' | 'number' | 'boolean';
  value: string;
}
export type RuleNode =
  | { kind: 'group'; op: 'and' | 'or'; negate: boolean; children: RuleNode[] }
  | ({ kind: 'trait' } & Compare)
  | {
      kind: 'event';
      event: string;
      cmp: '>=' | '>' | '==' | '<' | '<=';
      count: string;
      window: string;
      unit: 's' | 'm' | 'h' | 'd';
      filters: Compare[];
    }
  | { kind: 'segment'; segmentId: string; member: boolean };
export declare const COMPARE_OPS: Array<[CompareOp, string]>;
export declare function newNode(kind: 'group' | 'trait' | 'event' | 'segment' | 'filter'): RuleNode;
export declare function problems(node: RuleNode, where?: string): string[];
export declare function toLogic(node: RuleNode, root?: boolean): unknown;
export declare class NotBuildable extends Error {}
export declare function fromLogic(logic: unknown): RuleNode;
export declare function filterProblems(filters: Compare[], where: string): string[];
export declare function filterLogic(filters: Compare[]): unknown;
export declare function filtersFromLogic(logic: unknown): Compare[];
