/**
 * The scripted generator's vocabulary: common English words, so demos and tests read like
 * prose rather than "token 1, token 2".
 */
export const WORDS = (
  "the a an of to and in that is for it as with was on be by this are at from or have not which " +
  "but can will one all their there been more when would about if so what its into than them " +
  "time only new some could these two may first then do any like my now over such our man also " +
  "well even back after use her many way because most through where before must between each " +
  "good much those very still own long just under world both life while system data network " +
  "answer model token stream reader message server client request window morning river mountain " +
  "garden music language question light water history science simple careful quiet bright small " +
  "large early late common useful gentle steady patient clear open honest rapid distant familiar " +
  "build explain remember follow consider carry change notice measure return travel describe " +
  "discover imagine protect improve design choose gather listen answer wonder begin continue " +
  "often always rarely perhaps together nearly almost already again soon later quickly slowly " +
  "city forest ocean road bridge market library kitchen village harbor valley island station " +
  "idea reason method pattern detail moment signal promise journey lesson story record result"
).split(" ");

export const CLOSERS = [".", ".", ".", ",", ",", ";", "!", "?"] as const;
