// Moved to profiles/apply-event.ts (#25). Kept while processor/pipeline.ts, which imports
// it from here, is being split into steps; new code imports profiles/apply-event.ts.
export * from '../profiles/apply-event.ts';
