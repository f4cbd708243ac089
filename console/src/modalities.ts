// Modalities offered in pickers; any other code can still be typed in.
export const MODALITIES = ['CT', 'MR', 'CR', 'DX', 'US', 'MG', 'NM', 'PT', 'XA', 'RF', 'SC', 'OT']
