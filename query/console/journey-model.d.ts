// Types of journey-model.js (plain JS served to the browser as is), for its Node test.
export declare const BOX: { w: number; h: number; gx: number; gy: number; pad: number };
export interface Box {
  id: string;
  depth: number;
  x: number;
  y: number;
}
export interface Edge {
  from: string;
  to: string;
  label: string;
  /** The stats' name of this way (`variant:0`, `yes`, `met`, …); undefined for `next`. */
  arm?: string;
  path: string;
  lx: number;
  ly: number;
}
export declare function layout(nodes: unknown[]): {
  boxes: Box[];
  edges: Edge[];
  width: number;
  height: number;
};
export declare function summary(node: unknown): string;
export declare const NODE_TYPES: string[];
export interface ArmFigures {
  entered: number;
  converted: number;
  rate: number | null;
}
export declare function percent(x: number | null | undefined, sign?: boolean): string;
export declare function armLabel(arm: string): string;
export declare function armText(f: ArmFigures): string;
export declare function liftText(
  h: { lift: number | null; confidence: number | null },
  short?: boolean,
): string;
export declare function arms(node: unknown): string[];
// biome-ignore lint/suspicious/noExplicitAny: the form is plain editor state, read field by field
export type JourneyForm = any;
export declare function blankForm(): JourneyForm;
export declare function newFormNode(type: string, taken: string[]): JourneyForm;
export declare function toForm(journey: unknown): JourneyForm;
export declare function toJourney(form: JourneyForm): { body: Record<string, unknown>; problems: string[] };
export declare function errorTarget(message: string): { node: number } | { part: string } | undefined;
